#!/usr/bin/env bash
# Makes the passive-DNS sample captures (issue 5): a real resolver (dnsmasq)
# answers for a local zone that mirrors Azure Blob Storage's CNAME chains, a
# client resolves a name over UDP or TCP and then makes a real OpenSSL
# handshake, without SNI or with a custom-domain SNI. tcpdump on the bridge
# captures both. Everything runs inside private network namespaces created
# (and deleted) here; no packet leaves them. Needs root, dnsmasq, tcpdump,
# openssl, python3. Then run derive.py to wrap them in the tunnels.
#
# Usage: sudo captures/make-dns-captures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
srv=tlscdsrv$$
cleanup() {
  kill "${dns_pid:-}" 2>/dev/null || true
  for n in "$srv" $(ip netns list | awk '{print $1}' | grep -E "^tlscd$$h" || true); do
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Topology as in make-captures.sh: server namespace with a bridge (192.0.2.1),
# one namespace per client host (192.0.2.1x).
ip netns add "$srv"
ip netns exec "$srv" ip link set lo up
ip netns exec "$srv" ip link add br0 type bridge mcast_snooping 0
ip netns exec "$srv" ip addr add 192.0.2.1/24 dev br0
ip netns exec "$srv" ip link set br0 up
for i in 2 5 6; do
  n="tlscd$$h$i"
  ip netns add "$n"
  ip link add "h$i" netns "$n" type veth peer name "h$i-br" netns "$srv"
  ip netns exec "$n" ip link set lo up
  ip netns exec "$n" ip addr add "192.0.2.$((10 + i))/24" dev "h$i"
  ip netns exec "$n" ip link set "h$i" up
  ip netns exec "$srv" ip link set "h$i-br" master br0 up
done
sleep 1
SERVER=192.0.2.1

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=*.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:*.privatelink.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
LEGACY="DEFAULT:@SECLEVEL=0"

# The zone: a custom domain -> account name -> storage stamp (as public Azure
# DNS answers), and an account behind a private endpoint (privatelink zone).
# Address records live 5 s (--local-ttl), CNAMEs 300 s and 3600 s.
ip netns exec "$srv" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
  --bind-interfaces --listen-address="$SERVER" --port=53 --local-ttl=5 --pid-file= \
  --host-record=blob.ams23prdstr02a.store.core.windows.net,"$SERVER" \
  --cname=acct7.blob.core.windows.net,blob.ams23prdstr02a.store.core.windows.net,300 \
  --cname=files.contoso.example,acct7.blob.core.windows.net,3600 \
  --host-record=acct8.privatelink.blob.core.windows.net,"$SERVER" \
  --cname=acct8.blob.core.windows.net,acct8.privatelink.blob.core.windows.net,300 \
  --host-record=intranet.example.org,"$SERVER" \
  >"$work/dnsmasq.log" 2>&1 &
dns_pid=$!
sleep 1

port=41000
start_capture() {
  ip netns exec "$srv" tcpdump --immediate-mode -U -s 0 -i br0 -w "$1" \
    "tcp port $port or port 53" 2>"$work/tcpdump.log" &
  cap_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.3
}
stop_capture() { sleep 0.4; kill -TERM "$cap_pid" 2>/dev/null || true; wait "$cap_pid" 2>/dev/null || true; }
server() {
  ip netns exec "$srv" openssl s_server -quiet -accept "$SERVER:$port" -cert "$work/cert.pem" \
    -key "$work/key.pem" "$@" >/dev/null 2>&1 </dev/null &
  srv_pid=$!
  sleep 0.5
}
stop_server() { kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true; }
# resolve HOST NAME udp|tcp: one A query to dnsmasq, as a stub resolver sends it.
resolve() {
  ip netns exec "tlscd$$h$1" python3 - "$SERVER" "$2" "$3" <<'PY'
import os, socket, struct, sys
server, name, transport = sys.argv[1], sys.argv[2], sys.argv[3]
q = os.urandom(2) + struct.pack(">HHHHH", 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
if transport == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    r = s.recv(4096)
else:
    s = socket.create_connection((server, 53), timeout=3)
    s.sendall(struct.pack(">H", len(q)) + q)
    n = struct.unpack(">H", s.recv(2))[0]
    r = b""
    while len(r) < n:
        r += s.recv(n - len(r))
    s.close()
ancount = struct.unpack(">H", r[6:8])[0]
print(f"{name}: {ancount} answers", file=sys.stderr)
assert ancount >= 1
PY
}
sclient() { # host, s_client options
  local i=$1; shift
  timeout 5 ip netns exec "tlscd$$h$i" openssl s_client -connect "$SERVER:$port" "$@" \
    </dev/null >/dev/null 2>&1 || true
}
begin() { port=$((port + 1)); name=$1; start_capture "$work/$name.pcap"; }
end() { stop_server; stop_capture; echo "made $name"; }

# A legacy client reaches storage through a custom domain: its SNI is the
# custom name, which only the CNAME chain ties to acct7.blob.core.windows.net.
begin dns-cname-custom-domain
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 2 files.contoso.example udp
sclient 2 -tls1 -cipher "$LEGACY" -servername files.contoso.example
end

# A legacy client without SNI to a private endpoint (privatelink chain); the
# server requires TLS 1.2 and rejects it.
begin dns-privatelink-nosni
server -min_protocol TLSv1.2
resolve 2 acct8.blob.core.windows.net udp
sclient 2 -tls1 -cipher "$LEGACY" -noservername
end

# The same over DNS-over-TCP (what a resolver falls back to for long answers).
begin dns-tcp-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 5 acct7.blob.core.windows.net tcp
sclient 5 -tls1_1 -cipher "$LEGACY" -noservername
end

# The answer expired (5 s TTL) before the client connected: not a target.
begin dns-expired-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 6 acct8.blob.core.windows.net udp
sleep 7
sclient 6 -tls1 -cipher "$LEGACY" -noservername
end

# An unrelated name on the same server address: teaches nothing.
begin dns-unrelated-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 6 intranet.example.org udp
sclient 6 -tls1 -cipher "$LEGACY" -noservername
end

cp "$work"/dns-*.pcap "$here/"
echo "done"
