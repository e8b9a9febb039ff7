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
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlscd 2:1500 5:1500 6:1500

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=*.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:*.privatelink.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem KEY=$work/key.pem

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
on_exit_pids+=($!)
sleep 1

port=41000
# resolve HOST NAME udp|tcp: one A query to dnsmasq, as a stub resolver sends it.
resolve() {
  in_host "$1" python3 - "$SERVER" "$2" "$3" <<'PY'
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
begin_dns() { begin "$1" "tcp port $((port + 1)) or port 53"; }

# A legacy client reaches storage through a custom domain: its SNI is the
# custom name, which only the CNAME chain ties to acct7.blob.core.windows.net.
begin_dns dns-cname-custom-domain
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 2 files.contoso.example udp
sclient 2 -tls1 -cipher "$LEGACY" -servername files.contoso.example
end

# A legacy client without SNI to a private endpoint (privatelink chain); the
# server requires TLS 1.2 and rejects it.
begin_dns dns-privatelink-nosni
server -min_protocol TLSv1.2
resolve 2 acct8.blob.core.windows.net udp
sclient 2 -tls1 -cipher "$LEGACY" -noservername
end

# The same over DNS-over-TCP (what a resolver falls back to for long answers).
begin_dns dns-tcp-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 5 acct7.blob.core.windows.net tcp
sclient 5 -tls1_1 -cipher "$LEGACY" -noservername
end

# The answer expired (5 s TTL) before the client connected: DNS no longer
# tells (the TLS 1.0 certificate still does).
begin_dns dns-expired-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 6 acct8.blob.core.windows.net udp
sleep 7
sclient 6 -tls1 -cipher "$LEGACY" -noservername
end

# An unrelated name on the same server address: teaches nothing.
begin_dns dns-unrelated-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
resolve 6 intranet.example.org udp
sclient 6 -tls1 -cipher "$LEGACY" -noservername
end

cp "$work"/dns-*.pcap "$here/"
echo "done"
