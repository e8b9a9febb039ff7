#!/usr/bin/env bash
# Makes the sample captures in this folder with real TLS stacks (OpenSSL
# s_client/s_server, GnuTLS gnutls-cli, Python ssl, curl), captured by tcpdump.
# Everything runs inside private network namespaces created (and deleted) here;
# no packet leaves them. Needs root, tcpdump, openssl, gnutls-bin, curl, python3.
# Then derive.py builds the link-layer/encapsulation/damage variants.
#
# Usage: sudo captures/make-captures.sh   (run from anywhere; writes next to itself)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cleanup() {
  for n in $(ip netns list | awk '{print $1}' | grep -E "^tlsc(srv)?$$" ); do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Topology: a server namespace with a bridge (192.0.2.1, 2001:db8::1) and one
# namespace per client host (192.0.2.11.., 2001:db8::11..), each joined to the
# bridge by a veth pair. tcpdump listens on the bridge, so captures are
# Ethernet with real kernel segmentation. Addresses are documentation ranges.
srv=tlscsrv$$
ip netns add "$srv"
ip netns exec "$srv" ip link set lo up
ip netns exec "$srv" ip link add br0 type bridge mcast_snooping 0
ip netns exec "$srv" ip addr add 192.0.2.1/24 dev br0
ip netns exec "$srv" ip link set br0 up
add_host() { # index, mtu
  local i=$1 mtu=$2 n="tlsc$$h$1"
  ip netns add "$n"
  ip link add "h$i" netns "$n" type veth peer name "h$i-br" netns "$srv"
  ip netns exec "$n" ip link set lo up
  ip netns exec "$n" ip addr add "192.0.2.$((10 + i))/24" dev "h$i"
  ip netns exec "$n" ip addr add "2001:db8::$((10 + i))/64" dev "h$i" nodad
  ip netns exec "$n" ip link set "h$i" mtu "$mtu" up
  ip netns exec "$srv" ip link set "h$i-br" master br0 mtu "$mtu" up
}
for i in 1 2 3 4 5 6 7; do add_host "$i" 1500; done
add_host 8 576   # small MTU: large ClientHellos are split over TCP segments
# Keep the bridge at 1500 (it would follow its smallest port down to 576).
ip netns exec "$srv" ip link set br0 mtu 1500
# (IPv6 leaves an interface whose MTU dropped below 1280: add it only now.)
ip netns exec "$srv" ip addr add 2001:db8::1/64 dev br0 nodad
sleep 1
SERVER=192.0.2.1

# A certificate for the Azure Blob name pattern (self-signed; clients don't verify).
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=*.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:*.privatelink.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

LEGACY="DEFAULT:@SECLEVEL=0"
B=blob.core.windows.net
port=40000

start_capture() { # out file
  ip netns exec "$srv" tcpdump --immediate-mode -U -s 0 -i br0 -w "$1" "tcp port $port" 2>"$work/tcpdump.log" &
  cap_pid=$!
  # tcpdump can take a second or more to start listening: wait for it to say so.
  for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
}
stop_capture() {
  sleep 0.4
  kill -TERM "$cap_pid" 2>/dev/null || true
  wait "$cap_pid" 2>/dev/null || true
}
server() { # s_server options (listens on $SERVER or [2001:db8::1] with -6)
  local addr="$SERVER:$port"
  if [ "${1:-}" = "-6" ]; then shift; addr="[2001:db8::1]:$port"; fi
  ip netns exec "$srv" openssl s_server -quiet -accept "$addr" -cert "$work/cert.pem" \
    -key "$work/key.pem" "$@" >/dev/null 2>&1 </dev/null &
  srv_pid=$!
  sleep 0.5
}
stop_server() { kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; }
sclient() { # host index, s_client options
  local i=$1; shift
  timeout 5 ip netns exec "tlsc$$h$i" openssl s_client -connect "$SERVER:$port" "$@" \
    </dev/null >/dev/null 2>&1 || true
}
begin() { port=$((port + 1)); name=$1; start_capture "$work/$name.pcap"; }
end() { stop_server; stop_capture; echo "made $name"; }

# scenario NAME HOST "server options" "client options": one OpenSSL handshake.
scenario() {
  begin "$1"
  # shellcheck disable=SC2086
  server $3
  # shellcheck disable=SC2086
  sclient "$2" $4
  end
}

# Host 1: a legacy client against a TLS 1.2-minimum server (Azure since Feb 2026).
scenario openssl-tls10-rejected 1 "-min_protocol TLSv1.2" "-tls1 -cipher $LEGACY -servername legacy10.$B"
scenario openssl-tls11-rejected 1 "-min_protocol TLSv1.2" "-tls1_1 -cipher $LEGACY -servername legacy11.$B"
# Host 2: legacy clients that a permissive server still accepts.
scenario openssl-tls10 2 "-cipher $LEGACY -min_protocol TLSv1" "-tls1 -cipher $LEGACY -servername old10.$B"
scenario openssl-tls11 2 "-cipher $LEGACY -min_protocol TLSv1" "-tls1_1 -cipher $LEGACY -servername old11.$B"
scenario openssl-tls10-nosni 2 "-cipher $LEGACY -min_protocol TLSv1" "-tls1 -cipher $LEGACY -noservername"
scenario openssl-tls10-other-sni 2 "-cipher $LEGACY -min_protocol TLSv1" "-tls1 -cipher $LEGACY -servername intranet.example.org"
# Host 3: modern clients.
scenario openssl-tls12 3 "" "-tls1_2 -servername modern12.$B"
scenario openssl-tls13 3 "" "-tls1_3 -servername modern13.$B"
scenario openssl-tls13-hrr 3 "-groups P-256" "-tls1_3 -groups X25519:P-256 -servername retry13.$B"
# A TLS 1.3-capable client downgraded by an old server to TLS 1.1.
scenario openssl-downgrade-tls11 3 "-cipher $LEGACY -max_protocol TLSv1.1" "-cipher $LEGACY -servername downgraded.$B"
# Host 8 (MTU 576): a ClientHello over several TCP segments and two TLS records.
alpn="h2,http/1.1,spdy/3.1,stun.turn,webrtc,c-webrtc,ftp,imap,pop3,managesieve,coap,xmpp-client,xmpp-server,acme-tls/1,mqtt,dot,ntske/1,sunrpc,h3,smb,irc,postgresql,co,sip/2,tds/8.0,nntp,nnsp"
scenario openssl-tls12-split-hello 8 "" "-tls1_2 -max_send_frag 512 -alpn $alpn -servername split.$B"
scenario openssl-tls10-split-rejected 8 "-min_protocol TLSv1.2" "-tls1 -cipher $LEGACY -alpn $alpn -servername splitlegacy.$B"

# Session resumption (TLS 1.2 session id): the second connection resumes.
begin openssl-tls12-resumption
server -naccept 2 -no_ticket
sclient 3 -tls1_2 -servername resume.$B -sess_out "$work/sess.pem"
sclient 3 -tls1_2 -servername resume.$B -sess_in "$work/sess.pem"
end

# IPv6, TLS 1.1
begin openssl-ipv6-tls11
server -6 -cipher "$LEGACY" -min_protocol TLSv1
timeout 5 ip netns exec "tlsc$$h2" openssl s_client -connect "[2001:db8::1]:$port" -tls1_1 \
  -cipher "$LEGACY" -servername v6legacy.$B </dev/null >/dev/null 2>&1 || true
end

# Host 4: GnuTLS client.
for v in 1.1 1.2 1.3; do
  begin "gnutls-tls${v/./}"
  server -cipher "$LEGACY" -min_protocol TLSv1
  timeout 5 ip netns exec "tlsc$$h4" gnutls-cli --insecure \
    --priority "NORMAL:-VERS-ALL:+VERS-TLS$v:%LATEST_RECORD_VERSION" \
    --sni-hostname "gnutls${v/./}.$B" -p "$port" "$SERVER" </dev/null >/dev/null 2>&1 || true
  end
done

# Host 5: Python ssl client.
pyclient() { # max version, sni
  timeout 5 ip netns exec "tlsc$$h5" python3 - "$SERVER" "$port" "$1" "$2" <<'PY' || true
import socket, ssl, sys
host, port, maxv, sni = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
v = getattr(ssl.TLSVersion, maxv)
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = v
try:
    with socket.create_connection((host, port), timeout=3) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
except Exception as e:
    print("client:", e, file=sys.stderr)
PY
}
begin python-tls12; server; pyclient TLSv1_2 "py12.$B"; end
begin python-tls10-rejected; server -min_protocol TLSv1.2; pyclient TLSv1 "py10.$B"; end

# Host 6: curl, forced to TLS 1.0 against a TLS 1.2-only server, and default curl.
begin curl-tls10-rejected
server -min_protocol TLSv1.2 -www
timeout 5 ip netns exec "tlsc$$h6" curl -s -k --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY" \
  --resolve "curlacct.$B:$port:$SERVER" "https://curlacct.$B:$port/" >/dev/null 2>&1 || true
end
begin curl-tls13
server -www
timeout 5 ip netns exec "tlsc$$h6" curl -s -k --resolve "curl13.$B:$port:$SERVER" \
  "https://curl13.$B:$port/" >/dev/null 2>&1 || true
end

# Host 7: old clients written as raw bytes by Python (an SSLv2-compatible
# ClientHello offering TLS 1.0, an SSLv3 ClientHello); a real OpenSSL answers.
rawhello() { # kind
  timeout 5 ip netns exec "tlsc$$h7" python3 - "$SERVER" "$port" "$1" <<'PY' || true
import os, socket, struct, sys
host, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if kind == "sslv2":
    ciphers = bytes.fromhex("00002f" "000035" "00000a" "010080" "0700c0")
    challenge = os.urandom(16)
    body = b"\x01\x03\x01" + struct.pack(">HHH", len(ciphers), 0, len(challenge)) + ciphers + challenge
    msg = struct.pack(">H", 0x8000 | len(body)) + body
else:
    ch = b"\x03\x00" + os.urandom(32) + b"\x00" + struct.pack(">H", 4) + bytes.fromhex("002f000a") + b"\x01\x00"
    hs = b"\x01" + struct.pack(">I", len(ch))[1:] + ch
    msg = b"\x16\x03\x00" + struct.pack(">H", len(hs)) + hs
with socket.create_connection((host, port), timeout=3) as s:
    s.sendall(msg)
    try:
        s.recv(65536)
    except OSError:
        pass
PY
}
begin raw-sslv2-hello-tls10; server -cipher "$LEGACY" -min_protocol TLSv1; rawhello sslv2; end
begin raw-sslv3-hello; server -cipher "$LEGACY" -min_protocol TLSv1; rawhello sslv3; end

# Not TLS: plain HTTP to a TLS-looking port.
begin plain-http
ip netns exec "$srv" python3 -m http.server "$port" --bind "$SERVER" >/dev/null 2>&1 &
srv_pid=$!; sleep 0.8
timeout 5 ip netns exec "tlsc$$h6" curl -s "http://$SERVER:$port/" >/dev/null 2>&1 || true
end

cp "$work"/*.pcap "$here/"
# A demo capture mixing several clients, for the README.
mergecap -F pcapng -w "$here/demo.pcapng" \
  "$here/openssl-tls10-rejected.pcap" "$here/openssl-tls11.pcap" "$here/openssl-tls12.pcap" \
  "$here/openssl-tls13.pcap" "$here/curl-tls10-rejected.pcap" "$here/python-tls12.pcap" \
  "$here/gnutls-tls11.pcap" "$here/openssl-tls10-other-sni.pcap"
python3 "$here/derive.py" "$here"
echo "done"
