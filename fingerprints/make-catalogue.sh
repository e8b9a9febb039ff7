#!/usr/bin/env bash
# Makes the client-label catalogue (fingerprints/catalogue.csv) and the capture
# it was read from (captures/client-stacks.pcap) with every TLS client stack
# installed here, each in the option sets that matter for legacy TLS.
#
# Each case is one client command, run in its stack's own client host (a
# namespace: 192.0.2.11 OpenSSL's s_client, .12 GnuTLS, .13 curl, ...),
# connecting to its own port of an OpenSSL s_server (SECLEVEL=0, so TLS 1.0 and 1.1 handshakes
# complete) under the name catalogue.test (SNI). tlscensus reads the capture;
# the JA4 of each port's ClientHello gets that case's label. A case whose
# stack is not installed is skipped with a note; fingerprints/cases.tsv keeps
# port -> label -> command for the end-to-end test (tests/fingerprints.rs).
#
# Run as root from the repository: bash fingerprints/make-catalogue.sh
# Needs: iproute2 tcpdump openssl gnutls-bin curl wget python3 (Debian's,
# /usr/bin/python3) default-jre-headless nodejs ruby libio-socket-ssl-perl,
# and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=$repo/target/release/tlscensus
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
# shellcheck source=../captures/lib.sh
source captures/lib.sh

NAME=catalogue.test
FIRST_PORT=4400
HOSTS=9
topology cat $(for i in $(seq $HOSTS); do printf '%d:1500 ' "$i"; done)
for i in $(seq $HOSTS); do
  mkdir -p "/etc/netns/${nsp}h$i"
  echo "$SERVER $NAME" >"/etc/netns/${nsp}h$i/hosts"
done
trap 'for i in $(seq $HOSTS); do rm -rf "/etc/netns/${nsp}h$i"; done; teardown' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$NAME" \
  -addext "subjectAltName=DNS:$NAME" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# Versions for the labels (major.minor).
mm() { grep -o '[0-9]\+\.[0-9]\+' | head -1; }
have() { command -v "$1" >/dev/null 2>&1; }
OSSL=$(openssl version | mm)
PY=/usr/bin/python3
PYV=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_SSL=$($PY -c 'import ssl; print(ssl.OPENSSL_VERSION)' | mm)

# The Java client (captures/lib.sh): a JSSE handshake, optionally with one
# protocol enabled.
if have java; then
  java_client "$work"
  JAVA=$(java -version 2>&1 | head -1 | grep -o '"[0-9]*' | tr -d '"')
fi

cases=()   # "host<TAB>label<TAB>command" (the command is run with $port set)
host=1     # the client host of the cases added next
add() { cases+=("$host"$'\t'"$1"$'\t'"$2"); }

L0="DEFAULT:@SECLEVEL=0"
add "OpenSSL $OSSL s_client" "openssl s_client -connect $NAME:\$port"
add "OpenSSL $OSSL s_client -tls1_3" "openssl s_client -tls1_3 -connect $NAME:\$port"
add "OpenSSL $OSSL s_client -tls1_2" "openssl s_client -tls1_2 -connect $NAME:\$port"
add "OpenSSL $OSSL s_client -tls1_1" "openssl s_client -tls1_1 -cipher $L0 -connect $NAME:\$port"
add "OpenSSL $OSSL s_client -tls1" "openssl s_client -tls1 -cipher $L0 -connect $NAME:\$port"
host=2
if have gnutls-cli; then
  G=$(gnutls-cli --version | head -1 | mm)
  add "GnuTLS $G gnutls-cli" "gnutls-cli --insecure -p \$port $NAME"
  for v in 1.2 1.1 1.0; do
    add "GnuTLS $G gnutls-cli TLS $v only" \
      "gnutls-cli --insecure --priority NORMAL:-VERS-ALL:+VERS-TLS$v -p \$port $NAME"
  done
fi
host=3
if have curl; then
  C=$(curl --version | head -1 | awk '{print $2}' | mm)
  CL=$(curl --version | head -1 | grep -o 'OpenSSL/[0-9.]*\|GnuTLS/[0-9.]*' | sed 's|/| |' | awk '{split($2,v,"."); print $1" "v[1]"."v[2]}')
  add "curl $C / $CL" "curl -sk https://$NAME:\$port/"
  add "curl $C / $CL --http1.1" "curl -sk --http1.1 https://$NAME:\$port/"
  add "curl $C / $CL --tls-max 1.2" "curl -sk --tls-max 1.2 https://$NAME:\$port/"
  add "curl $C / $CL --tlsv1.1 --tls-max 1.1" "curl -sk --tlsv1.1 --tls-max 1.1 --ciphers $L0 https://$NAME:\$port/"
  add "curl $C / $CL --tlsv1.0 --tls-max 1.0" "curl -sk --tlsv1.0 --tls-max 1.0 --ciphers $L0 https://$NAME:\$port/"
fi
host=4
if have wget; then
  W=$(wget --version | head -1 | mm)
  WL=$(wget --version | grep -o '+ssl/[a-z]*' | cut -d/ -f2)
  add "Wget $W / $WL" "wget -q -O /dev/null --no-check-certificate https://$NAME:\$port/"
  add "Wget $W / $WL --secure-protocol=TLSv1" "wget -q -O /dev/null --no-check-certificate --secure-protocol=TLSv1 https://$NAME:\$port/"
fi
host=5
# Python: ssl with a default context (no ALPN), urllib (ALPN http/1.1), and
# contexts pinned to one legacy version as old scripts do.
cat >"$work/client.py" <<EOF
import socket, ssl, sys, urllib.request
mode, port = sys.argv[1], int(sys.argv[2])
c = ssl.create_default_context()
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
if mode == "urllib":
    urllib.request.urlopen("https://$NAME:%d/" % port, context=c).read()
    sys.exit()
if mode != "default":
    c.set_ciphers("$L0")
    c.minimum_version = c.maximum_version = getattr(ssl.TLSVersion, mode)
c.wrap_socket(socket.create_connection(("$NAME", port)), server_hostname="$NAME").close()
EOF
for mode in default urllib TLSv1_2 TLSv1_1 TLSv1; do
  case $mode in
    default) what="ssl" ;;
    urllib) what="urllib" ;;
    *) what="ssl $mode only" ;;
  esac
  add "Python $PYV $what / OpenSSL $PY_SSL" "$PY $work/client.py $mode \$port"
done
host=6
if have java; then
  add "Java $JAVA JSSE" "java $work/Client.java $NAME \$port"
  add "Java $JAVA JSSE TLSv1.2" "java $work/Client.java $NAME \$port TLSv1.2"
  add "Java $JAVA JSSE TLSv1.1" "java -Djava.security.properties=$work/java-legacy.security $work/Client.java $NAME \$port TLSv1.1"
  add "Java $JAVA JSSE TLSv1" "java -Djava.security.properties=$work/java-legacy.security $work/Client.java $NAME \$port TLSv1"
fi
host=7
if have node; then
  N=$(node --version | mm)
  add "Node.js $N tls" "node -e 'require(\"tls\").connect({host:\"$NAME\",port:+process.argv[1],servername:\"$NAME\",rejectUnauthorized:false},function(){this.end()})' \$port"
  add "Node.js $N tls TLSv1" "node --tls-min-v1.0 -e 'require(\"tls\").connect({host:\"$NAME\",port:+process.argv[1],servername:\"$NAME\",rejectUnauthorized:false,minVersion:\"TLSv1\",maxVersion:\"TLSv1\",ciphers:\"$L0\"},function(){this.end()})' \$port"
fi
host=8
if have ruby; then
  R=$(ruby -e 'print RUBY_VERSION' | mm)
  rb() { # extra context settings
    echo "ruby -rsocket -ropenssl -e 'c=OpenSSL::SSL::SSLContext.new; c.verify_mode=OpenSSL::SSL::VERIFY_NONE; $1 s=OpenSSL::SSL::SSLSocket.new(TCPSocket.new(\"$NAME\",ARGV[0].to_i),c); s.hostname=\"$NAME\"; s.connect; s.close' \$port"
  }
  add "Ruby $R openssl" "$(rb '')"
  add "Ruby $R openssl TLSv1" "$(rb "c.ciphers=\"$L0\"; c.min_version=c.max_version=OpenSSL::SSL::TLS1_VERSION;")"
fi
host=9
if perl -MIO::Socket::SSL -e1 2>/dev/null; then
  P=$(perl -MIO::Socket::SSL -e 'print $IO::Socket::SSL::VERSION')
  pl() { # extra IO::Socket::SSL arguments
    echo "perl -MIO::Socket::SSL -e 'IO::Socket::SSL->new(PeerHost=>\"$NAME\",PeerPort=>\$ARGV[0],SSL_hostname=>\"$NAME\",SSL_verify_mode=>0$1) or die' \$port"
  }
  add "Perl IO::Socket::SSL $P" "$(pl '')"
  add "Perl IO::Socket::SSL $P TLSv1" "$(pl ",SSL_version=>\"TLSv1\",SSL_cipher_list=>\"$L0\"")"
fi

last=$((FIRST_PORT + ${#cases[@]}))
for ((i = 0; i < ${#cases[@]}; i++)); do
  ip netns exec "$srv" openssl s_server -quiet -www -accept "$SERVER:$((FIRST_PORT + i))" \
    -cert "$work/cert.pem" -key "$work/key.pem" -cipher "$L0" >/dev/null 2>&1 </dev/null &
  on_exit_pids+=($!)
done
sleep 1
start_capture "$work/client-stacks.pcap" "tcp portrange $FIRST_PORT-$last"
printf 'port\thost\tlabel\tcommand\n' >"$work/cases.tsv"
for ((i = 0; i < ${#cases[@]}; i++)); do
  port=$((FIRST_PORT + i))
  IFS=$'\t' read -r h label cmd <<<"${cases[$i]}"
  cmd=${cmd//\$port/$port}
  timeout 20 ip netns exec "${nsp}h$h" bash -c "$cmd" </dev/null >/dev/null 2>&1 || true
  printf '%s\t192.0.2.%d\t%s\t%s\n' "$port" $((10 + h)) "$label" "$cmd" >>"$work/cases.tsv"
done
stop_capture

# JA4 of each port's first ClientHello -> that case's label.
"$bin" read --all --events "$work/events.json" "$work/client-stacks.pcap" >/dev/null
$PY - "$work/events.json" "$work/cases.tsv" "$work/catalogue.csv" <<'EOF'
import csv, json, sys
events, cases, out = sys.argv[1:]
ja4 = {}
for line in open(events):
    e = json.loads(line)
    if e.get("ja4"):
        ja4.setdefault(e["dst_port"], e["ja4"])
rows = []
for c in csv.DictReader(open(cases), delimiter="\t"):
    j = ja4.get(int(c["port"]))
    if j is None:
        print(f"note: no ClientHello from {c['label']!r}: left out", file=sys.stderr)
        continue
    rows.append((j, c["label"], c["command"].split(" -")[0].split(" ")[0]))
with open(out, "w", newline="") as f:
    f.write("# Client labels: JA4 -> the software that sends such a ClientHello.\n")
    f.write("# Made by fingerprints/make-catalogue.sh from captures/client-stacks.pcap\n")
    f.write("# (stacks of Debian 12); several labels for one JA4 are joined when read.\n")
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["ja4", "label", "made_by"])
    for r in sorted(rows, key=lambda r: (r[1], r[0])):
        w.writerow(r)
print(f"{len(rows)} client labels, {len(set(r[0] for r in rows))} distinct JA4", file=sys.stderr)
EOF
cp "$work/catalogue.csv" fingerprints/catalogue.csv
cp "$work/cases.tsv" fingerprints/cases.tsv
cp "$work/client-stacks.pcap" captures/client-stacks.pcap
echo "made fingerprints/catalogue.csv, fingerprints/cases.tsv, captures/client-stacks.pcap"
