#!/usr/bin/env bash
# Makes the server-certificate sample captures (issue 5): clients that send no
# SNI (OpenSSL -noservername, GnuTLS --disable-sni, Python ssl without
# server_hostname, curl and Java to an IP address) against OpenSSL servers
# whose certificates do or do not name Azure Blob Storage. Up to TLS 1.2 the
# server's certificate is in clear text and tells which server the client
# reached. A small CA hierarchy is made here: a root, an issuing CA and leaf
# certificates shaped like Azure's (wildcard CN, many SANs), an ECDSA leaf with
# only a SAN, an unrelated one and one too large for the default stream cap.
# Everything runs inside private network namespaces created (and deleted)
# here; no packet leaves them. Needs root, tcpdump, openssl, gnutls-bin, curl,
# python3, a JDK (java).
#
# Usage: sudo captures/make-cert-captures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
# Host 8 has MTU 576: the server's certificate chain spans many TCP segments.
topology tlscc 2:1500 4:1500 5:1500 6:1500 7:1500 8:576

# --- certificates -------------------------------------------------------
ca() { openssl "$@" 2>/dev/null; }
ca req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/O=tlscensus test/CN=Test Root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -keyout "$work/root.key" -out "$work/root.pem"
ca req -newkey rsa:2048 -nodes -subj "/C=US/O=tlscensus test/CN=Test Azure RSA TLS Issuing CA 03" \
  -keyout "$work/inter.key" -out "$work/inter.csr"
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$work/inter.ext"
ca x509 -req -in "$work/inter.csr" -CA "$work/root.pem" -CAkey "$work/root.key" -CAcreateserial \
  -days 3650 -extfile "$work/inter.ext" -out "$work/inter.pem"
# leaf NAME KEYALG SUBJECT SANS: a leaf signed by the issuing CA.
leaf() {
  local name=$1 alg=$2 subject=$3 sans=$4
  ca req -newkey "$alg" -nodes -subj "$subject" -keyout "$work/$name.key" -out "$work/$name.csr"
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans" >"$work/$name.ext"
  ca x509 -req -in "$work/$name.csr" -CA "$work/inter.pem" -CAkey "$work/inter.key" \
    -CAcreateserial -days 3650 -extfile "$work/$name.ext" -out "$work/$name.pem"
}
# Azure's storage certificates: CN *.blob.core.windows.net, the stamp's own
# name and the DNS-zone endpoints (z1..z50) as SANs.
sans="DNS:*.blob.core.windows.net,DNS:*.ams23prdstr02a.store.core.windows.net,DNS:*.blob.storage.azure.net"
for z in $(seq 1 50); do sans="$sans,DNS:*.z$z.blob.storage.azure.net"; done
leaf blob rsa:2048 "/C=US/ST=WA/L=Redmond/O=Microsoft Corporation/CN=*.blob.core.windows.net" "$sans"
# ECDSA, no CN: only the SAN names the account.
openssl ecparam -name prime256v1 -out "$work/p256.pem"
leaf acct9 "ec:$work/p256.pem" "/O=Contoso Ltd" "DNS:acct9.blob.core.windows.net"
# An unrelated server.
leaf other rsa:2048 "/CN=intranet.example.org" "DNS:intranet.example.org"
# A leaf of about 24 KB (800 SANs): more than the default --max-stream-bytes.
huge="DNS:*.blob.core.windows.net"
for n in $(seq 1 800); do huge="$huge,DNS:host$n.storage-frontend.example.net"; done
leaf huge rsa:2048 "/CN=*.blob.core.windows.net" "$huge"

use() { CERT=$work/$1.pem KEY=$work/$1.key CHAIN=$work/inter.pem; }
port=42000

# --- OpenSSL s_client ----------------------------------------------------
# A legacy TLS 1.0 client without SNI, accepted: the key case.
use blob
begin cert-openssl-tls10-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
sclient 2 -tls1 -cipher "$LEGACY" -noservername
end

# TLS 1.2 from the MTU-576 host: the chain over many segments.
begin cert-openssl-tls12-mtu576-nosni
server
sclient 8 -tls1_2 -noservername
end

# Session resumption: the first connection shows the certificate, the
# resumed one (ServerHello, ChangeCipherSpec) shows none.
begin cert-openssl-tls12-resumed-nosni
server -naccept 2 -no_ticket
sclient 2 -tls1_2 -noservername -sess_out "$work/sess.pem"
sclient 2 -tls1_2 -noservername -sess_in "$work/sess.pem"
end

# TLS 1.3 encrypts the certificate: nothing to read.
begin cert-openssl-tls13-nosni
server
sclient 2 -tls1_3 -noservername
end

# An unrelated server's certificate.
use other
begin cert-openssl-tls10-other-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
sclient 2 -tls1 -cipher "$LEGACY" -noservername
end

# A leaf larger than the default stream cap (16 KiB).
use huge
begin cert-openssl-tls12-huge-leaf-nosni
server
sclient 2 -tls1_2 -noservername
end

# --- GnuTLS: TLS 1.1, ECDSA leaf with only a SAN ---------------------------
use acct9
begin cert-gnutls-tls11-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
timeout 5 ip netns exec "${nsp}h4" gnutls-cli --insecure --disable-sni \
  --priority "NORMAL:-VERS-ALL:+VERS-TLS1.1" -p "$port" "$SERVER" </dev/null >/dev/null 2>&1 || true
end

# --- Python ssl: TLS 1.2, no server_hostname -------------------------------
use blob
begin cert-python-tls12-nosni
server
timeout 5 ip netns exec "${nsp}h5" python3 - "$SERVER" "$port" <<'PY' || true
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as raw:
    with ctx.wrap_socket(raw) as s:
        print(s.version(), file=sys.stderr)
PY
end

# --- curl to an IP address (no SNI for address literals), TLS 1.0 ----------
begin cert-curl-tls10-ip-nosni
server -www -cipher "$LEGACY" -min_protocol TLSv1
timeout 5 ip netns exec "${nsp}h6" curl -sk --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY" \
  -o /dev/null "https://$SERVER:$port/" || true
end

# --- Java (SSLSocket to an address: no SNI), TLS 1.0 as old JREs speak it ---
cat >"$work/Legacy.java" <<'JAVA'
import java.security.cert.X509Certificate;
import javax.net.ssl.*;

public class Legacy {
    public static void main(String[] a) throws Exception {
        TrustManager[] all = {new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String t) {}
            public void checkServerTrusted(X509Certificate[] c, String t) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        }};
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, all, null);
        try (SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(a[0], Integer.parseInt(a[1]))) {
            s.setEnabledProtocols(new String[] {a[2]});
            s.startHandshake();
            System.err.println(s.getSession().getProtocol());
        }
    }
}
JAVA
# A modern JDK disables TLS 1.0; re-enable it as an old JRE had it.
printf 'jdk.tls.disabledAlgorithms=\n' >"$work/java.security"
begin cert-java-tls10-nosni
server -cipher "$LEGACY" -min_protocol TLSv1
timeout 30 ip netns exec "${nsp}h7" java -Djava.security.properties="$work/java.security" \
  "$work/Legacy.java" "$SERVER" "$port" TLSv1 </dev/null >/dev/null 2>&1 || true
end

cp "$work"/cert-*.pcap "$here/"
echo "done"
