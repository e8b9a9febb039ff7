#!/usr/bin/env bash
# Makes the captures of the handshake details the richer event layouts show
# (ECS, Zeek, OCSF): the server's choice of ALPN protocol, key-share group
# and suite, and resumed sessions. OpenSSL s_server and s_client in the
# namespaces of lib.sh; tcpdump on the bridge; nothing leaves them.
#
# Needs root and Debian packages tcpdump openssl.
# Usage: sudo captures/make-detail-captures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlsdt 3:1500

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=detail.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem KEY=$work/key.pem
B=blob.core.windows.net
port=43000

# TLS 1.3 with ALPN h2 and group P-384, then the same client resuming with
# the ticket it got (a pre-shared key); then TLS 1.2 with ECDHE and ALPN
# http/1.1, and a TLS 1.2 client resuming by session ID.
begin openssl-alpn-resumed
server -naccept 4 -alpn h2,http/1.1 -groups P-384:X25519
sclient 3 -tls1_3 -alpn h2 -groups P-384 -servername alpn13.$B -sess_out "$work/s13.pem"
sclient 3 -tls1_3 -alpn h2 -groups P-384 -servername alpn13.$B -sess_in "$work/s13.pem"
sclient 3 -tls1_2 -alpn http/1.1 -cipher ECDHE-RSA-AES128-GCM-SHA256 -servername alpn12.$B \
  -no_ticket -sess_out "$work/s12.pem"
sclient 3 -tls1_2 -alpn http/1.1 -cipher ECDHE-RSA-AES128-GCM-SHA256 -servername alpn12.$B \
  -no_ticket -sess_in "$work/s12.pem"
end

cp "$work"/*.pcap "$here/"
echo "done"
