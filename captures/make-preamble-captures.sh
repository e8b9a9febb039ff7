#!/usr/bin/env bash
# Makes the preamble captures (issue 14): TLS that does not start the stream.
# Real clients reach a real TLS server (OpenSSL s_server on 192.0.2.19, host
# 9) through real proxies in the server namespace (192.0.2.1): squid (HTTP
# CONNECT, with and without proxy authentication), tinyproxy (HTTP CONNECT),
# dante (SOCKS4a, SOCKS5, SOCKS5 with username/password); and real database
# servers with TLS: PostgreSQL (SSLRequest) and MariaDB (SSL request). STARTTLS
# (SMTP, IMAP, POP3, FTP) and the PROXY protocol use OpenSSL s_client and
# Python's ssl against a small Python server that speaks the preamble and
# hands the socket to Python's ssl (a real TLS stack). tcpdump on the bridge
# sees both sides of each proxy. Everything runs inside private network
# namespaces created (and deleted) here; no packet leaves them.
#
# Needs root and Debian packages tcpdump openssl curl squid tinyproxy
# dante-server openssh-server postgresql mariadb-server mariadb-client freetds-bin python3
# python3-psycopg2 python3-pymysql default-jre-headless.
# Usage: sudo captures/make-preamble-captures.sh [SCENARIO...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlscp 1:1500 2:1500 3:1500 4:1500 9:1500
ORIGIN=192.0.2.19
PY=/usr/bin/python3

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=*.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:*.database.windows.net,DNS:*.postgres.database.azure.com,DNS:*.mysql.database.azure.com" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem KEY=$work/key.pem
chmod 644 "$work/key.pem"
chmod 755 "$work"

# The proxies resolve the names clients ask for through the server
# namespace's own hosts file (ip netns exec bind-mounts /etc/netns/NAME/).
mkdir -p "/etc/netns/$srv"
cat >"/etc/netns/$srv/hosts" <<EOF
127.0.0.1 localhost
$ORIGIN legacy10.blob.core.windows.net legacy11.blob.core.windows.net
$ORIGIN modern12.blob.core.windows.net modern13.blob.core.windows.net
$ORIGIN rejected10.blob.core.windows.net intranet.example.org
EOF
mkdir -p "/etc/netns/${nsp}h9"
cp "/etc/netns/$srv/hosts" "/etc/netns/${nsp}h9/hosts"
cleanup_netns() {
  local n
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${nsp}(srv|h)" || true); do
    ip netns pids "$n" | xargs -r kill 2>/dev/null || true
  done
  sleep 0.5
  rm -rf "/etc/netns/$srv" "/etc/netns/${nsp}h9"
  teardown
}
trap cleanup_netns EXIT

# Daemons are started with `ip netns exec` itself in the background (not
# through a shell function), so that $! is the daemon and can be stopped.

# origin PORT [s_server options]: the TLS server on host 9.
origin() {
  local p=$1; shift
  ip netns exec "${nsp}h9" openssl s_server -quiet -accept "$ORIGIN:$p" -cert "$CERT" -key "$KEY" \
    -cipher "$LEGACY" "$@" >/dev/null 2>&1 </dev/null &
  origin_pid=$!
  sleep 0.5
}
stop_origin() { kill "$origin_pid" 2>/dev/null || true; wait "$origin_pid" 2>/dev/null || true; }

# capture NAME: everything TCP on the bridge into $work/NAME.pcap.
capture() { name=$1; start_capture "$work/$name.pcap" "tcp"; }
done_capture() { stop_capture; echo "made $name"; }

in_srv() { ip netns exec "$srv" "$@"; }

start_squid() { # [auth]
  local auth=${1:-}
  cat >"$work/squid.conf" <<EOF
http_port $SERVER:3128
acl clients src 192.0.2.0/24
cache deny all
access_log none
cache_log $work/squid-cache.log
pid_filename $work/squid.pid
coredump_dir $work
shutdown_lifetime 0 seconds
EOF
  if [ -n "$auth" ]; then
    printf 'u:%s\n' "$(openssl passwd -apr1 p)" >"$work/squid.passwd"
    chmod 644 "$work/squid.passwd"
    cat >>"$work/squid.conf" <<EOF
auth_param basic program /usr/lib/squid/basic_ncsa_auth $work/squid.passwd
auth_param basic realm tlscensus
acl authed proxy_auth REQUIRED
http_access allow clients authed
EOF
  else
    echo "http_access allow clients" >>"$work/squid.conf"
  fi
  echo "http_access deny all" >>"$work/squid.conf"
  touch "$work/squid-cache.log"
  chmod 666 "$work/squid-cache.log"
  ip netns exec "$srv" squid -N -f "$work/squid.conf" >"$work/squid.out" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 50); do in_srv bash -c "exec 3<>/dev/tcp/$SERVER/3128" 2>/dev/null && break; sleep 0.2; done
}
stop_proxy() { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; sleep 0.3; }

start_tinyproxy() { # [auth]
  cat >"$work/tinyproxy.conf" <<EOF
Port 8888
Listen $SERVER
Timeout 30
Allow 192.0.2.0/24
ConnectPort 443
LogLevel Critical
MaxClients 10
EOF
  if [ -n "${1:-}" ]; then echo "BasicAuth u p" >>"$work/tinyproxy.conf"; fi
  ip netns exec "$srv" tinyproxy -d -c "$work/tinyproxy.conf" >"$work/tinyproxy.out" 2>&1 &
  proxy_pid=$!
  sleep 1
}

start_dante() { # socksmethod
  cat >"$work/danted.conf" <<EOF
logoutput: $work/danted.log
internal: $SERVER port = 1080
external: $SERVER
clientmethod: none
socksmethod: $1
user.privileged: root
user.unprivileged: nobody
client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
EOF
  ip netns exec "$srv" danted -f "$work/danted.conf" >"$work/danted.out" 2>&1 &
  proxy_pid=$!
  sleep 1
}

curl_via() { # host-index proxy-url url [curl options]
  local i=$1 proxy=$2 url=$3; shift 3
  timeout 10 ip netns exec "${nsp}h$i" curl -sk -o /dev/null --proxy "$proxy" "$url" "$@" || true
}

# python_tunnel INDEX PROXY_PORT [USER:PASS]: Python's http.client on host
# INDEX through the HTTP proxy on $SERVER (set_tunnel: a CONNECT, with
# Proxy-Authorization when credentials are given), TLS 1.2 to modern12.
python_tunnel() {
  in_host "$1" timeout 10 "$PY" - "$SERVER" "$2" "${3:-}" <<'PY' || true
import base64, http.client, ssl, sys
proxy, port, cred = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
headers = {"Proxy-Authorization": "Basic " + base64.b64encode(cred.encode()).decode()} if cred else None
c = http.client.HTTPSConnection(proxy, port, context=ctx, timeout=5)
c.set_tunnel("modern12.blob.core.windows.net", 443, headers=headers)
try:
    c.request("GET", "/")
    c.getresponse()
except Exception:
    pass
PY
}

# write_get_java: a Java 17 HTTPS client (trusts any certificate, answers a
# 407 with u:p) through an HTTP proxy at ARG0:3128.
write_get_java() {
  cat >"$work/Get.java" <<'JAVA'
import java.net.*;
import javax.net.ssl.*;
import java.security.cert.X509Certificate;
public class Get {
  public static void main(String[] a) throws Exception {
    TrustManager[] all = { new X509TrustManager() {
      public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
      public void checkClientTrusted(X509Certificate[] c, String s) {}
      public void checkServerTrusted(X509Certificate[] c, String s) {} } };
    SSLContext ctx = SSLContext.getInstance("TLSv1.2");
    ctx.init(null, all, null);
    HttpsURLConnection.setDefaultSSLSocketFactory(ctx.getSocketFactory());
    HttpsURLConnection.setDefaultHostnameVerifier((h, s) -> true);
    Authenticator.setDefault(new Authenticator() {
      protected PasswordAuthentication getPasswordAuthentication() {
        return new PasswordAuthentication("u", "p".toCharArray()); } });
    Proxy p = new Proxy(Proxy.Type.HTTP, new InetSocketAddress(a[0], 3128));
    HttpURLConnection c = (HttpURLConnection) new URL(a[1]).openConnection(p);
    c.setConnectTimeout(5000); c.setReadTimeout(5000);
    try { c.getResponseCode(); } catch (Exception e) {}
  }
}
JAVA
}

scenario_squid() {
  origin 443 -min_protocol TLSv1 -max_protocol TLSv1.3
  start_squid
  capture squid-connect-curl-tls10
  curl_via 1 "http://$SERVER:3128" https://legacy10.blob.core.windows.net/ \
    --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY"
  done_capture
  capture squid-connect-curl-tls13
  curl_via 2 "http://$SERVER:3128" https://modern13.blob.core.windows.net/
  done_capture
  capture squid-connect-python-tls12
  python_tunnel 3 3128
  done_capture
  stop_proxy
  stop_origin
  # The same origin refusing TLS 1.0 and 1.1.
  origin 443 -min_protocol TLSv1.2
  start_squid
  capture squid-connect-openssl-tls10-rejected
  timeout 5 ip netns exec "${nsp}h4" openssl s_client -proxy "$SERVER:3128" \
    -connect rejected10.blob.core.windows.net:443 -tls1 -cipher "$LEGACY" </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_proxy
  # Proxy authentication: curl first asks without credentials (407), then
  # sends them on the same connection; Java answers the 407 the same way.
  start_squid auth
  capture squid-auth-407-curl-tls12
  curl_via 1 "http://$SERVER:3128" https://modern12.blob.core.windows.net/ \
    --proxy-user u:p --proxy-anyauth --tlsv1.2 --tls-max 1.2
  done_capture
  capture squid-auth-refused
  curl_via 1 "http://$SERVER:3128" https://modern12.blob.core.windows.net/ --proxy-user u:wrong
  done_capture
  capture squid-auth-java-tls12
  write_get_java
  in_host 2 timeout 30 java -Djdk.http.auth.tunneling.disabledSchemes= -Dhttps.protocols=TLSv1.2 \
    "$work/Get.java" "$SERVER" https://modern12.blob.core.windows.net/ >/dev/null 2>&1 || true
  done_capture
  stop_proxy
  stop_origin
}

scenario_tinyproxy() {
  origin 443 -min_protocol TLSv1 -max_protocol TLSv1.3
  start_tinyproxy
  capture tinyproxy-connect-openssl-tls11
  timeout 5 ip netns exec "${nsp}h3" openssl s_client -proxy "$SERVER:8888" \
    -connect legacy11.blob.core.windows.net:443 -tls1_1 -cipher "$LEGACY" </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_proxy
  # Proxy authentication: Python sends Proxy-Authorization with its CONNECT.
  start_tinyproxy auth
  capture tinyproxy-auth-python-tls12
  python_tunnel 1 8888 u:p
  done_capture
  stop_proxy
  start_tinyproxy
  # No server_name: the host the client asked the proxy for names the target.
  capture tinyproxy-connect-openssl-tls10-nosni
  timeout 5 ip netns exec "${nsp}h4" openssl s_client -proxy "$SERVER:8888" -noservername \
    -connect legacy10.blob.core.windows.net:443 -tls1 -cipher "$LEGACY" </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_proxy
  stop_origin
}

scenario_dante() {
  origin 443 -min_protocol TLSv1 -max_protocol TLSv1.3
  start_dante none
  # SOCKS4 carries an address: the client resolves the name itself.
  capture dante-socks4-curl-tls10
  curl_via 1 "socks4://$SERVER:1080" https://legacy10.blob.core.windows.net/ \
    --resolve "legacy10.blob.core.windows.net:443:$ORIGIN" --tlsv1.0 --tls-max 1.0 --ciphers "$LEGACY"
  done_capture
  # This dante build refuses SOCKS4a host names (reply 91): no tunnel.
  capture dante-socks4a-refused
  curl_via 1 "socks4a://$SERVER:1080" https://legacy10.blob.core.windows.net/
  done_capture
  capture dante-socks5-curl-tls13
  curl_via 2 "socks5h://$SERVER:1080" https://modern13.blob.core.windows.net/
  done_capture
  # Java's SOCKS client (SOCKS5, the name unresolved: sent to the proxy).
  write_get_java
  capture dante-socks5-java-tls12
  sed -e 's/Proxy.Type.HTTP, new InetSocketAddress(a\[0\], 3128)/Proxy.Type.SOCKS, new InetSocketAddress(a[0], 1080)/' \
    -e 's/public class Get /public class GetSocks /' "$work/Get.java" >"$work/GetSocks.java"
  in_host 4 timeout 30 java -Dhttps.protocols=TLSv1.2 "$work/GetSocks.java" "$SERVER" \
    https://modern12.blob.core.windows.net/ >/dev/null 2>&1 || true
  done_capture
  stop_proxy
  # SOCKS4a through OpenSSH's dynamic forwarding (ssh -D), which resolves the
  # name itself: ssh in the server namespace listens on 192.0.2.1:1081 and
  # tunnels to an sshd on the origin host.
  ssh-keygen -q -t ed25519 -N "" -f "$work/id" >/dev/null
  ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey" >/dev/null
  cp "$work/id.pub" "$work/authorized_keys"
  chmod 600 "$work/authorized_keys"
  mkdir -p /run/sshd
  ip netns exec "${nsp}h9" /usr/sbin/sshd -D -e -p 2222 -h "$work/hostkey" \
    -o ListenAddress="$ORIGIN" -o PermitRootLogin=yes -o AuthorizedKeysFile="$work/authorized_keys" \
    -o StrictModes=no -o PasswordAuthentication=no >"$work/sshd.log" 2>&1 &
  on_exit_pids+=($!)
  sleep 1
  ip netns exec "$srv" ssh -N -g -D "$SERVER:1081" -p 2222 -i "$work/id" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o BatchMode=yes "root@$ORIGIN" >"$work/ssh.log" 2>&1 &
  ssh_pid=$!
  sleep 2
  capture ssh-socks4a-curl-tls12
  curl_via 2 "socks4a://$SERVER:1081" https://modern12.blob.core.windows.net/ --tlsv1.2 --tls-max 1.2
  done_capture
  kill "$ssh_pid" 2>/dev/null || true
  wait "$ssh_pid" 2>/dev/null || true
  # Username/password (RFC 1929) against a system account made for the run.
  useradd -M -s /usr/sbin/nologin tlscsocks 2>/dev/null || true
  echo "tlscsocks:s3cret" | chpasswd
  start_dante username
  capture dante-socks5-auth-curl-tls12
  curl_via 3 "socks5h://tlscsocks:s3cret@$SERVER:1080" https://modern12.blob.core.windows.net/ \
    --tlsv1.2 --tls-max 1.2
  done_capture
  stop_proxy
  userdel tlscsocks 2>/dev/null || true
  stop_origin
}

scenario_postgres() {
  local bin=/usr/lib/postgresql/15/bin data=$work/pg
  mkdir -p "$data"
  chown postgres "$data"
  cp "$CERT" "$work/pg.crt"
  cp "$KEY" "$work/pg.key"
  chown postgres "$work/pg.crt" "$work/pg.key"
  chmod 600 "$work/pg.key"
  runuser -u postgres -- "$bin/initdb" -D "$data" -A trust >/dev/null
  cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '$SERVER'
port = 5432
unix_socket_directories = '$work'
ssl = on
ssl_cert_file = '$work/pg.crt'
ssl_key_file = '$work/pg.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
  echo "host all all 192.0.2.0/24 trust" >>"$data/pg_hba.conf"
  chmod 777 "$work"
  ip netns exec "$srv" setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$data" >"$work/pg.log" 2>&1 &
  proxy_pid=$!
  sleep 2
  capture postgres-psql-tls13
  in_host 1 timeout 10 psql "host=$SERVER user=postgres dbname=postgres sslmode=require" \
    -c 'select 1' >/dev/null 2>&1 || true
  done_capture
  capture postgres-python-tls12
  in_host 2 timeout 10 "$PY" - "$SERVER" <<'PY' || true
import sys, psycopg2
c = psycopg2.connect(host=sys.argv[1], user="postgres", dbname="postgres", sslmode="require",
                     ssl_max_protocol_version="TLSv1.2")
c.cursor().execute("select 1")
PY
  done_capture
  capture postgres-psql-tls11-rejected
  in_host 3 timeout 10 psql "host=$SERVER user=postgres dbname=postgres sslmode=require ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1" \
    -c 'select 1' >/dev/null 2>&1 || true
  done_capture
  capture postgres-psql-nossl
  in_host 4 timeout 10 psql "host=$SERVER user=postgres dbname=postgres sslmode=disable" \
    -c 'select 1' >/dev/null 2>&1 || true
  done_capture
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}

scenario_mariadb() {
  local data=$work/my
  mkdir -p "$data"
  mariadb-install-db --user=root --datadir="$data" --auth-root-authentication-method=normal >/dev/null 2>&1
  in_srv mariadbd --user=root --datadir="$data" --socket="$work/my.sock" --pid-file="$work/my.pid" \
    --bind-address="$SERVER" --port=3306 --skip-grant-tables --ssl-cert="$CERT" --ssl-key="$KEY" \
    --tls-version=TLSv1.2,TLSv1.3 >"$work/my.log" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 50); do in_srv bash -c "exec 3<>/dev/tcp/$SERVER/3306" 2>/dev/null && break; sleep 0.2; done
  capture mariadb-client-tls13
  in_host 1 timeout 10 mariadb -h "$SERVER" -u root --ssl --skip-ssl-verify-server-cert \
    -e 'select 1' >/dev/null 2>&1 || true
  done_capture
  capture mariadb-pymysql-tls12
  in_host 2 timeout 10 "$PY" - "$SERVER" <<'PY' || true
import ssl, sys, pymysql
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
c = pymysql.connect(host=sys.argv[1], user="root", ssl=ctx)
c.cursor().execute("select 1")
PY
  done_capture
  capture mariadb-client-tls11-rejected
  in_host 3 timeout 10 mariadb -h "$SERVER" -u root --ssl --skip-ssl-verify-server-cert \
    --tls-version=TLSv1.1 -e 'select 1' >/dev/null 2>&1 || true
  done_capture
  kill "$proxy_pid" 2>/dev/null || true
  wait "$proxy_pid" 2>/dev/null || true
}

# A small server that speaks a text protocol up to STARTTLS (or reads a
# PROXY protocol header), then hands the socket to Python's ssl.
cat >"$work/upgrade.py" <<'PY'
import socket, ssl, sys
proto, host, port, cert, key, minv = sys.argv[1:7]
maxv = sys.argv[7] if len(sys.argv) > 7 else None
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.minimum_version = getattr(ssl.TLSVersion, minv)
if maxv:
    ctx.maximum_version = getattr(ssl.TLSVersion, maxv)
s = socket.create_server((host, int(port)))
conn, _ = s.accept()
f = conn.makefile("rb")
def say(line): conn.sendall(line.encode() + b"\r\n")
def recvn(n):
    """Exactly n bytes from the socket (not through the buffered reader)."""
    b = b""
    while len(b) < n:
        chunk = conn.recv(n - len(b))
        if not chunk:
            sys.exit()
        b += chunk
    return b
if proto == "smtp":
    say("220 mx.example ESMTP")
    while True:
        cmd = f.readline().strip().upper()
        if cmd.startswith(b"EHLO"):
            say("250-mx.example"); say("250-PIPELINING"); say("250 STARTTLS")
        elif cmd == b"STARTTLS":
            say("220 2.0.0 Ready to start TLS"); break
        else:
            say("502 no"); sys.exit()
elif proto == "imap":
    say("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")
    while True:
        tag, cmd = (f.readline().strip().split(b" ", 1) + [b""])[:2]
        if cmd.upper() == b"CAPABILITY":
            say("* CAPABILITY IMAP4rev1 STARTTLS"); say(tag.decode() + " OK done")
        elif cmd.upper() == b"STARTTLS":
            say(tag.decode() + " OK Begin TLS negotiation now"); break
        else:
            say(tag.decode() + " BAD"); sys.exit()
elif proto == "pop3":
    say("+OK ready")
    while True:
        cmd = f.readline().strip().upper()
        if cmd == b"CAPA":
            say("+OK"); say("STLS"); say(".")
        elif cmd == b"STLS":
            say("+OK Begin TLS negotiation"); break
        else:
            say("-ERR"); sys.exit()
elif proto == "ftp":
    say("220 (vsFTPd 3.0.3)")
    while True:
        cmd = f.readline().strip().upper()
        if cmd.startswith(b"AUTH TLS") or cmd.startswith(b"AUTH SSL"):
            say("234 Proceed with negotiation."); break
        else:
            say("530 Please login"); sys.exit()
elif proto == "ldap":
    # The StartTLS extended request, answered with success (RFC 4511 4.14).
    req = conn.recv(4096)
    assert b"1.3.6.1.4.1.1466.20037" in req, req
    msgid = req[4]
    resp_name = b"\x8a\x16" + b"1.3.6.1.4.1.1466.20037"
    result = b"\x0a\x01\x00\x04\x00\x04\x00" + resp_name
    op = b"\x78" + bytes([len(result)]) + result
    body = b"\x02\x01" + bytes([msgid]) + op
    conn.sendall(b"\x30" + bytes([len(body)]) + body)
elif proto == "xmpp":
    buf = b""
    while b"<stream:stream" not in buf:
        buf += conn.recv(4096)
    conn.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' id='tlsc1' from='example.org' "
                 b"version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                 b"<required/></starttls></stream:features>")
    buf = b""
    while b"<starttls" not in buf:
        buf += conn.recv(4096)
    conn.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
elif proto == "tds":
    # MS-TDS: PRELOGIN (0x12) answered by a tabular result (0x04) with
    # ENCRYPTION on; then the TLS handshake inside PRELOGIN packets.
    def read_packet():
        h = recvn(8)
        return h[0], recvn(int.from_bytes(h[2:4], "big") - 8)
    def send_packet(t, payload):
        conn.sendall(bytes([t, 1]) + (len(payload) + 8).to_bytes(2, "big") + bytes([0, 0, 1, 0]) + payload)
    read_packet()
    opts = bytes([0, 0, 11, 0, 6, 1, 0, 17, 0, 1, 0xFF]) + bytes([16, 0, 0x07, 0xD0, 0, 0]) + bytes([1])
    send_packet(0x04, opts)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=True)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            data = out.read()
            if data:
                send_packet(0x12, data)
            _, payload = read_packet()
            inc.write(payload)
        except ssl.SSLError:
            data = out.read()
            if data:
                send_packet(0x12, data)
            sys.exit()
    data = out.read()
    if data:
        send_packet(0x12, data)
    sys.exit()
elif proto == "proxy":
    # Read exactly the header from the socket (a buffered reader could take
    # the ClientHello too): v2 by its 16-byte head and length, v1 to its "\n".
    head = recvn(12)
    if head == b"\r\n\r\n\x00\r\nQUIT\n":
        rest = recvn(4)
        recvn(int.from_bytes(rest[2:4], "big"))
    else:
        while not head.endswith(b"\n"):
            head += recvn(1)
        assert head.startswith(b"PROXY "), head
try:
    t = ctx.wrap_socket(conn, server_side=True)
    t.recv(1)
except Exception:
    pass
PY

upgrade_server() { # protocol port min-version [max-version]
  ip netns exec "${nsp}h9" "$PY" "$work/upgrade.py" "$1" "$ORIGIN" "$2" "$CERT" "$KEY" "$3" ${4:-} >/dev/null 2>&1 &
  origin_pid=$!
  sleep 0.7
}

scenario_starttls() {
  local p=2500 proto
  for proto in smtp imap pop3 ftp; do
    p=$((p + 1))
    upgrade_server "$proto" "$p" TLSv1
    capture "starttls-$proto-openssl-tls10"
    timeout 5 ip netns exec "${nsp}h1" openssl s_client -starttls "$proto" -connect "$ORIGIN:$p" \
      -tls1 -cipher "$LEGACY" </dev/null >/dev/null 2>&1 || true
    done_capture
    stop_origin
  done
  upgrade_server ldap 2389 TLSv1_2
  capture starttls-ldap-openssl-tls12
  timeout 5 ip netns exec "${nsp}h3" openssl s_client -starttls ldap -connect "$ORIGIN:2389" \
    -tls1_2 </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_origin
  upgrade_server xmpp 2522 TLSv1
  capture starttls-xmpp-openssl-tls11
  timeout 5 ip netns exec "${nsp}h4" openssl s_client -starttls xmpp -xmpphost example.org \
    -connect "$ORIGIN:2522" -tls1_1 -cipher "$LEGACY" </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_origin
  upgrade_server smtp 2587 TLSv1_2
  capture starttls-smtp-python-tls13
  in_host 2 timeout 10 "$PY" - "$ORIGIN" <<'PY' || true
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(sys.argv[1], 2587, timeout=5)
s.ehlo()
s.starttls(context=ctx)
PY
  done_capture
  stop_origin
}

scenario_tds() {
  # FreeTDS tsql (TDS 7.4, encryption required) against the Python server
  # above: the TLS handshake inside TDS PRELOGIN packets, as SQL Server and
  # Azure SQL carry it.
  cat >"$work/freetds.conf" <<EOF
[global]
    tds version = 7.4
    encryption = require
EOF
  upgrade_server tds 1433 TLSv1_2 TLSv1_2
  capture tds-freetds-tls12
  in_host 1 env FREETDSCONF="$work/freetds.conf" timeout 10 tsql -H "$ORIGIN" -p 1433 -U sa -P x \
    </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_origin
  upgrade_server tds 1433 TLSv1_3
  capture tds-freetds-tls13
  in_host 2 env FREETDSCONF="$work/freetds.conf" timeout 10 tsql -H "$ORIGIN" -p 1433 -U sa -P x \
    </dev/null >/dev/null 2>&1 || true
  done_capture
  stop_origin
}

scenario_proxyprotocol() {
  upgrade_server proxy 8443 TLSv1
  capture proxy-protocol-v1-python-tls10
  in_host 4 timeout 10 "$PY" - "$ORIGIN" <<'PY' || true
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
s = socket.create_connection((sys.argv[1], 8443))
s.sendall(b"PROXY TCP4 198.51.100.7 192.0.2.19 51234 8443\r\n")
t = ctx.wrap_socket(s, server_hostname="legacy10.blob.core.windows.net")
t.sendall(b"x")
PY
  done_capture
  stop_origin
  upgrade_server proxy 8444 TLSv1_2
  capture proxy-protocol-v2-python-tls12
  in_host 4 timeout 10 "$PY" - "$ORIGIN" <<'PY' || true
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.create_connection((sys.argv[1], 8444))
# PROXY v2: signature, PROXY over TCP/IPv6, the original client and server, a TLV.
addrs = socket.inet_pton(socket.AF_INET6, "2001:db8:7::7") + socket.inet_pton(socket.AF_INET6, "2001:db8::19")
addrs += (51234).to_bytes(2, "big") + (8444).to_bytes(2, "big") + bytes([0x04, 0, 2, 0xAA, 0xBB])
s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) + len(addrs).to_bytes(2, "big") + addrs)
t = ctx.wrap_socket(s, server_hostname="modern12.blob.core.windows.net")
t.sendall(b"x")
PY
  done_capture
  stop_origin
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(squid tinyproxy dante postgres mariadb starttls tds proxyprotocol)
for s in "${scenarios[@]}"; do "scenario_$s"; done
cp "$work"/*.pcap "$here/" 2>/dev/null || true
