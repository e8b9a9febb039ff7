#!/usr/bin/env bash
# Makes tests/data/policy/oracle.pcap and oracle.csv: every client
# stack below shakes hands with a real OpenSSL s_server configured by each
# server policy (the presets but pq-hybrid, which OpenSSL 3.0 cannot run,
# and the test policies of tests/data/policy/), each pair on its own port.
# The CSV says what the real handshake did (ok: the client completed it);
# tests/it/policy.rs checks that tlscensus' verdict on each pair's hello is
# the same. Server options come from the policy file itself
# (policy-server-args.py). Namespaces of lib.sh; nothing leaves them.
#
# Needs root and Debian packages tcpdump openssl gnutls-bin curl python3
# golang-go, a JDK 17 (java) and Node.js (node).
# Usage: sudo captures/make-policy-captures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlspo 1:1500
java_client "$work"
# SSL 3.0 as well, as an administrator re-enables it: JSSE still speaks it
# (Debian's OpenSSL and GnuTLS are built without it).
sed 's/SSLv3, //' "$work/java-legacy.security" >"$work/java-sslv3.security"

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=policy.example" \
  -keyout "$work/rsa.key" -out "$work/rsa.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=policy.example" -keyout "$work/ec.key" -out "$work/ec.pem" 2>/dev/null

policies=()
for p in mozilla-modern mozilla-intermediate nist-800-52r2 ecdhe-aead tls13-only; do
  policies+=("$repo/src/policy/presets/$p.toml")
done
for p in "$repo"/tests/data/policy/*.toml "$repo"/tests/data/policy/*.json; do policies+=("$p"); done

H=policy.example
# Each client: NAME then the command, run in the client host with $PORT set;
# exit status 0 means the handshake completed.
clients=(
  "openssl-default|openssl s_client -brief -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12|openssl s_client -brief -tls1_2 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls11|openssl s_client -brief -tls1_1 -cipher DEFAULT:@SECLEVEL=0 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls10|openssl s_client -brief -tls1 -cipher DEFAULT:@SECLEVEL=0 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12-rsa-kx-cbc|openssl s_client -brief -tls1_2 -cipher AES128-SHA:AES256-SHA:AES128-SHA256 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12-ecdhe-cbc|openssl s_client -brief -tls1_2 -cipher ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA384 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12-dhe|openssl s_client -brief -tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12-x448|openssl s_client -brief -tls1_2 -groups X448 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls12-sha1-sigs|openssl s_client -brief -tls1_2 -sigalgs RSA+SHA1:ECDSA+SHA1 -cipher DEFAULT:@SECLEVEL=0 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls13-p521|openssl s_client -brief -tls1_3 -groups P-521 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls13-chacha|openssl s_client -brief -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls13-ccm8|openssl s_client -brief -tls1_3 -ciphersuites TLS_AES_128_CCM_8_SHA256 -connect $SERVER:\$PORT -servername $H"
  "openssl-tls13-pss256|openssl s_client -brief -tls1_3 -sigalgs rsa_pss_rsae_sha256:rsa_pss_rsae_sha384 -connect $SERVER:\$PORT -servername $H"
  "openssl-ecdsa-only|openssl s_client -brief -sigalgs ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384 -connect $SERVER:\$PORT -servername $H"
  "gnutls-default|gnutls-cli --insecure --sni-hostname $H -p \$PORT $SERVER"
  "gnutls-tls12|gnutls-cli --insecure --sni-hostname $H --priority NORMAL:-VERS-ALL:+VERS-TLS1.2 -p \$PORT $SERVER"
  "gnutls-tls12-rsa-kx-cbc|gnutls-cli --insecure --sni-hostname $H --priority NONE:+VERS-TLS1.2:+AES-128-CBC:+AES-256-CBC:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL:+GROUP-ALL -p \$PORT $SERVER"
  "python-default|python3 $work/client.py $SERVER \$PORT $H"
  "python-tls12-ecdhe-gcm|python3 $work/client.py $SERVER \$PORT $H TLSv1_2 ECDHE+AESGCM"
  "curl-default|curl -k -s -o /dev/null --max-time 5 https://$H:\$PORT/ --resolve $H:\$PORT:$SERVER"
  "curl-tls12-cbc|curl -k -s -o /dev/null --max-time 5 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES256-SHA:AES256-SHA https://$H:\$PORT/ --resolve $H:\$PORT:$SERVER"
  "java17-default|java $work/Client.java $SERVER \$PORT"
  "java17-tls12|java $work/Client.java $SERVER \$PORT TLSv1.2"
  "java17-tls10|java -Djava.security.properties=$work/java-legacy.security $work/Client.java $SERVER \$PORT TLSv1"
  "java17-sslv3|java -Djava.security.properties=$work/java-sslv3.security $work/Client.java $SERVER \$PORT SSLv3"
  "node-default|node $work/client.js $SERVER \$PORT $H"
  "node-tls12-cbc|node $work/client.js $SERVER \$PORT $H TLSv1.2 ECDHE-RSA-AES128-SHA:AES128-SHA"
  "go-default|$work/goclient $SERVER \$PORT $H"
  "go-tls12|$work/goclient $SERVER \$PORT $H max=1.2"
  "go-tls12-rsa-kx|$work/goclient $SERVER \$PORT $H max=1.2 suites=TLS_RSA_WITH_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA"
  "go-tls10|$work/goclient $SERVER \$PORT $H min=1.0 max=1.0"
  "go-tls13-p384|$work/goclient $SERVER \$PORT $H min=1.3 curves=P384"
)

cat >"$work/client.py" <<'PY'
import socket, ssl, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if len(sys.argv) > 4:
    ctx.maximum_version = getattr(ssl.TLSVersion, sys.argv[4])
if len(sys.argv) > 5:
    ctx.set_ciphers(sys.argv[5])
with socket.create_connection((host, port), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname=name):
        pass
PY
cat >"$work/client.js" <<'JS'
const tls = require('tls');
const [host, port, name, version, ciphers] = process.argv.slice(2);
const opts = { host, port: Number(port), servername: name, rejectUnauthorized: false };
if (version) { opts.minVersion = version; opts.maxVersion = version; }
if (ciphers) { opts.ciphers = ciphers; }
const s = tls.connect(opts, () => { s.end(); process.exit(0); });
s.on('error', () => process.exit(1));
setTimeout(() => process.exit(1), 5000);
JS
cat >"$work/client.go" <<'GO'
// A crypto/tls handshake that trusts any certificate:
// goclient HOST PORT NAME [max=1.0|1.1|1.2|1.3] [min=...] [suites=IANA,...] [curves=X25519,P256,P384,P521]
package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

var versions = map[string]uint16{"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}
var curves = map[string]tls.CurveID{"X25519": tls.X25519, "P256": tls.CurveP256, "P384": tls.CurveP384, "P521": tls.CurveP521}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: goclient HOST PORT NAME [max=V] [min=V] [suites=A,B] [curves=A,B]")
	}
	cfg := &tls.Config{ServerName: os.Args[3], InsecureSkipVerify: true}
	for _, opt := range os.Args[4:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "max", "min":
			ver, ok := versions[v]
			if !ok {
				fail("unknown version %q", v)
			}
			if k == "max" {
				cfg.MaxVersion = ver
			} else {
				cfg.MinVersion = ver
			}
		case "suites":
			known := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
			for _, name := range strings.Split(v, ",") {
				found := false
				for _, s := range known {
					if s.Name == name {
						cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
						found = true
					}
				}
				if !found {
					fail("unknown suite %q", name)
				}
			}
		case "curves":
			for _, name := range strings.Split(v, ",") {
				c, ok := curves[name]
				if !ok {
					fail("unknown curve %q", name)
				}
				cfg.CurvePreferences = append(cfg.CurvePreferences, c)
			}
		default:
			fail("unknown option %q", opt)
		}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(os.Args[1], os.Args[2]), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.Close()
}
GO
# Go's own TLS stack (crypto/tls), built once; the standard library only.
(cd "$work" && GOCACHE=$work/gocache GOPATH=$work/gopath GO111MODULE=off go build -o goclient client.go)

csv=$repo/tests/data/policy/oracle.csv
echo "port,client,policy,handshake" >"$csv.tmp"
port=44000
start_capture "$work/policy-oracle.pcap" "tcp portrange 44001-44999"
for pol in "${policies[@]}"; do
  name=$(basename "$pol"); name=${name%.*}
  mapfile -t args < <(python3 "$here/policy-server-args.py" "$pol" "$work")
  for c in "${clients[@]}"; do
    port=$((port + 1))
    client=${c%%|*} cmd=${c#*|}
    ip netns exec "$srv" openssl s_server -quiet -www -accept "$SERVER:$port" "${args[@]}" \
      >/dev/null 2>&1 </dev/null &
    srv_pid=$!
    sleep 0.4
    if timeout 10 ip netns exec "${nsp}h1" env PORT=$port bash -c "$cmd" \
      </dev/null >/dev/null 2>&1; then result=ok; else result=failed; fi
    stop_server
    echo "$port,$client,$name,$result" | tee -a "$csv.tmp"
  done
done
stop_capture
mv "$csv.tmp" "$csv"
cp "$work/policy-oracle.pcap" "$repo/tests/data/policy/oracle.pcap"
echo "done"
