#!/usr/bin/env bash
# Makes the real-server STARTTLS captures: servers from the Debian archive
# (postfix, dovecot, vsftpd, prosody, slapd, INN's nnrpd) in the server
# namespace (192.0.2.1), each configured once with TLS 1.0/1.1 allowed and
# once with them refused, and real clients in the host namespaces (curl,
# Python's smtplib/imaplib/poplib/ftplib/nntplib, `openssl s_client
# -starttls`, swaks, ldapsearch -ZZ), speaking the whole conversation real
# software speaks: capabilities, EHLO, FEAT, CAPA, AUTH probes, ID, refused
# upgrades and fallbacks. tcpdump on the bridge; nothing leaves the
# namespaces.
#
# Needs root and Debian packages tcpdump openssl curl python3 postfix
# dovecot-imapd dovecot-pop3d dovecot-managesieved dovecot-lmtpd vsftpd
# prosody slapd ldap-utils inn2 swaks xrdp freerdp2-x11 xvfb openvpn.
# Usage: sudo captures/make-server-captures.sh [SCENARIO...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlssv 1:1500 2:1500 3:1500 4:1500
PY=/usr/bin/python3

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mail.blob.core.windows.net" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:mail.test.example" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem KEY=$work/key.pem
chmod 644 "$work/key.pem"
chmod 755 "$work"
# Servers linked with OpenSSL read this: TLS 1.0 and the old suites allowed
# (a server's own settings then narrow it).
cat >"$work/openssl.cnf" <<'EOF'
openssl_conf = init
[init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT:@SECLEVEL=0
EOF
export OPENSSL_CONF=$work/openssl.cnf

cleanup() {
  local n
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${nsp}(srv|h)" || true); do
    ip netns pids "$n" | xargs -r kill 2>/dev/null || true
  done
  sleep 0.5
  teardown
}
trap cleanup EXIT

capture() { name=$1; start_capture "$work/$name.pcap" "tcp"; }
done_capture() { stop_capture; echo "made $name"; }
in_srv() { ip netns exec "$srv" "$@"; }
# client INDEX CMD...: a client program on host INDEX, at most 15 s.
client() { local i=$1; shift; timeout 15 ip netns exec "${nsp}h$i" "$@" </dev/null >/dev/null 2>&1 || true; }
# py INDEX: a Python client on host INDEX, the program on standard input.
py() { local i=$1; shift; timeout 15 ip netns exec "${nsp}h$i" "$PY" - "$SERVER" "$@" >/dev/null 2>&1 || true; }
OLD=(--tlsv1.0 --tls-max 1.0 --ciphers "DEFAULT:@SECLEVEL=0")
OLD11=(--tlsv1.1 --tls-max 1.1 --ciphers "DEFAULT:@SECLEVEL=0")
SC_OLD=(-tls1 -cipher "DEFAULT:@SECLEVEL=0")

# Python's TLS context for the clients: no verification; `old` allows and
# asks for TLS 1.0 only.
cat >"$work/ctx.py" <<'EOF'
import ssl, sys
def ctx(old=False):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if old:
        c.set_ciphers("DEFAULT:@SECLEVEL=0")
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = ssl.TLSVersion.TLSv1
    return c
EOF
export PYTHONPATH=$work

# ---- postfix: SMTP on 25 (TLS 1.0 allowed), submission on 587 (TLS 1.2 and
# later only, TLS required before AUTH).
start_postfix() {
  local d=$work/postfix
  mkdir -p "$d" "$work/postfix-data"
  cp /etc/postfix/master.cf "$d/"
  cat >"$d/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = /var/spool/postfix
data_directory = $work/postfix-data
myhostname = mx.test.example
mydestination = test.example
inet_interfaces = $SERVER
inet_protocols = ipv4
mynetworks = 192.0.2.0/24
maillog_file = $work/postfix.log
maillog_file_prefixes = $work
smtpd_tls_cert_file = $CERT
smtpd_tls_key_file = $KEY
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1
smtpd_tls_mandatory_protocols = >=TLSv1
smtpd_tls_ciphers = low
tls_low_cipherlist = DEFAULT:@SECLEVEL=0
smtpd_sasl_auth_enable = no
local_recipient_maps =
EOF
  chown -R postfix "$work/postfix-data"
  postconf -c "$d" -F '*/*/chroot = n'
  postconf -c "$d" -M submission/inet="submission inet n - n - - smtpd"
  postconf -c "$d" -P "submission/inet/smtpd_tls_security_level=encrypt" \
    "submission/inet/smtpd_tls_protocols=>=TLSv1.2" \
    "submission/inet/smtpd_tls_mandatory_protocols=>=TLSv1.2"
  in_srv postfix -c "$d" start >/dev/null 2>&1
  sleep 1
}
stop_postfix() { in_srv postfix -c "$work/postfix" stop >/dev/null 2>&1 || true; sleep 0.5; }

scenario_postfix() {
  start_postfix
  printf 'Subject: census\r\n\r\nhello\r\n' >"$work/mail.txt"
  capture starttls-postfix
  # curl: EHLO, STARTTLS, EHLO again, MAIL, RCPT, DATA.
  client 1 curl -sk --ssl-reqd "smtp://$SERVER:25" --mail-from a@test.example \
    --mail-rcpt b@test.example -T "$work/mail.txt" "${OLD[@]}"
  client 2 curl -sk --ssl-reqd "smtp://$SERVER:587" --mail-from a@test.example \
    --mail-rcpt b@test.example -T "$work/mail.txt"
  # TLS 1.1 on submission: refused by the server's protocol floor.
  client 3 curl -sk --ssl-reqd "smtp://$SERVER:587" --mail-from a@test.example \
    --mail-rcpt b@test.example -T "$work/mail.txt" "${OLD11[@]}"
  # Python smtplib: EHLO, STARTTLS (TLS 1.0), EHLO, QUIT.
  py 4 <<'PY'
import smtplib, sys, ctx
s = smtplib.SMTP(sys.argv[1], 25, timeout=5)
s.ehlo("legacy.test.example")
s.starttls(context=ctx.ctx(old=True))
s.ehlo("legacy.test.example")
s.quit()
PY
  # swaks pipelines where the server offers PIPELINING.
  client 1 swaks --server "$SERVER:587" --tls --from a@test.example --to b@test.example \
    --pipeline
  client 2 openssl s_client -starttls smtp -connect "$SERVER:25" -name c.test.example "${SC_OLD[@]}"
  # A client that never upgrades: clear-text mail.
  py 3 <<'PY'
import smtplib, sys
s = smtplib.SMTP(sys.argv[1], 25, timeout=5)
s.sendmail("a@test.example", ["b@test.example"], "Subject: clear\r\n\r\nx\r\n")
s.quit()
PY
  done_capture
  stop_postfix
}

# ---- dovecot: IMAP (143), POP3 (110), ManageSieve (4190), LMTP (24).
start_dovecot() { # min-protocol
  local d=$work/dovecot
  mkdir -p "$d/run" "$work/mail"
  chmod 777 "$work/mail"
  cat >"$d/dovecot.conf" <<EOF
base_dir = $d/run
state_dir = $d/run
protocols = imap pop3 sieve lmtp
listen = $SERVER
log_path = $work/dovecot.log
ssl = yes
ssl_cert = <$CERT
ssl_key = <$KEY
ssl_min_protocol = $1
ssl_cipher_list = DEFAULT:@SECLEVEL=0
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$work/mail/%u
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/mail/%u
}
service lmtp {
  inet_listener lmtp {
    address = $SERVER
    port = 24
  }
}
service managesieve-login {
  inet_listener sieve {
    port = 4190
  }
}
protocol lmtp {
  postmaster_address = postmaster@test.example
}
EOF
  in_srv dovecot -c "$d/dovecot.conf"
  sleep 1.5
}
stop_dovecot() { in_srv doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true; sleep 1; }

dovecot_clients() { # tag: old|modern
  local mode=$1 tlsopt=() pyold=False
  if [ "$mode" = old ]; then tlsopt=("${OLD[@]}"); pyold=True; fi
  # curl: CAPABILITY, STARTTLS, CAPABILITY, LOGIN, ...
  client 1 curl -sk --ssl-reqd "imap://$SERVER/INBOX" -u user:secret "${tlsopt[@]}"
  client 2 curl -sk --ssl-reqd "pop3://$SERVER/" -u user:secret "${tlsopt[@]}"
  py 3 "$pyold" <<'PY'
import imaplib, sys, ctx
m = imaplib.IMAP4(sys.argv[1], 143, timeout=5)
m.xatom("ID", '("name" "census-test" "version" "1")')
m.starttls(ssl_context=ctx.ctx(old=sys.argv[2] == "True"))
m.login("user", "secret")
m.logout()
PY
  py 4 "$pyold" <<'PY'
import poplib, sys, ctx
p = poplib.POP3(sys.argv[1], 110, timeout=5)
p._longcmd("AUTH")  # a bare AUTH lists the mechanisms
p.capa()
p.stls(context=ctx.ctx(old=sys.argv[2] == "True"))
p.user("user")
p.pass_("secret")
p.quit()
PY
  if [ "$mode" = old ]; then
    client 1 openssl s_client -starttls sieve -connect "$SERVER:4190" "${SC_OLD[@]}"
    client 2 openssl s_client -starttls lmtp -connect "$SERVER:24" -name c.test.example "${SC_OLD[@]}"
  else
    client 1 openssl s_client -starttls sieve -connect "$SERVER:4190"
    client 2 openssl s_client -starttls lmtp -connect "$SERVER:24" -name c.test.example
  fi
}

scenario_dovecot() {
  capture starttls-dovecot
  start_dovecot TLSv1
  dovecot_clients old
  stop_dovecot
  # TLS 1.2 and later only: the old clients are refused in the handshake.
  start_dovecot TLSv1.2
  dovecot_clients old
  dovecot_clients modern
  stop_dovecot
  done_capture
}

# ---- vsftpd: FTP with AUTH TLS/AUTH SSL (anonymous sessions may use TLS).
start_vsftpd() { # TLS 1.0 allowed: YES|NO
  mkdir -p /var/run/vsftpd/empty "$work/ftp"
  cat >"$work/vsftpd.conf" <<EOF
listen=YES
listen_address=$SERVER
background=NO
anonymous_enable=YES
anon_root=$work/ftp
no_anon_password=YES
local_enable=NO
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=NO
force_anon_data_ssl=NO
ssl_tlsv1=$1
ssl_sslv2=NO
ssl_sslv3=NO
require_ssl_reuse=NO
ssl_ciphers=DEFAULT:@SECLEVEL=0
rsa_cert_file=$CERT
rsa_private_key_file=$KEY
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
xferlog_enable=NO
EOF
  ip netns exec "$srv" vsftpd "$work/vsftpd.conf" >/dev/null 2>&1 &
  ftp_pid=$!
  sleep 1
}
stop_vsftpd() { kill "$ftp_pid" 2>/dev/null || true; wait "$ftp_pid" 2>/dev/null || true; }

ftp_clients() { # old|modern
  local mode=$1 tlsopt=() pyold=False sc=()
  if [ "$mode" = old ]; then tlsopt=("${OLD[@]}"); pyold=True; sc=("${SC_OLD[@]}"); fi
  # curl: AUTH SSL (vsftpd accepts it), USER, PASS, PWD, ...
  client 1 curl -sk --ssl-reqd "ftp://$SERVER/" "${tlsopt[@]}"
  # Python ftplib: FEAT first (as FileZilla does), then AUTH TLS.
  py 2 "$pyold" <<'PY'
import ftplib, sys, ctx
f = ftplib.FTP_TLS(context=ctx.ctx(old=sys.argv[2] == "True"), timeout=5)
f.connect(sys.argv[1], 21)
f.sendcmd("FEAT")
f.auth()
f.login()
f.quit()
PY
  client 3 openssl s_client -starttls ftp -connect "$SERVER:21" "${sc[@]}"
}

scenario_vsftpd() {
  capture starttls-vsftpd
  start_vsftpd YES
  ftp_clients old
  stop_vsftpd
  # vsftpd's ssl_tlsv1=NO turns off TLS 1.0 (1.1 and later stay).
  start_vsftpd NO
  ftp_clients old
  ftp_clients modern
  # A client that stays in clear text.
  py 4 <<'PY'
import ftplib, sys
f = ftplib.FTP(sys.argv[1], timeout=5)
f.login()
f.nlst()
f.quit()
PY
  stop_vsftpd
  done_capture
}

# ---- prosody: XMPP client-to-server (5222) and server-to-server (5269).
start_prosody() { # LuaSec protocol: tlsv1+ | tlsv1_2+
  mkdir -p "$work/prosody-data"
  chmod 777 "$work/prosody-data"
  cat >"$work/prosody.cfg.lua" <<EOF
run_as_root = true
daemonize = false
pidfile = "$work/prosody.pid"
data_path = "$work/prosody-data"
interfaces = { "$SERVER" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
log = { error = "$work/prosody.log" }
modules_enabled = { "tls"; "saslauth"; "dialback"; "disco"; "ping" }
c2s_require_encryption = true
s2s_require_encryption = false
s2s_secure_auth = false
ssl = {
  certificate = "$CERT";
  key = "$KEY";
  protocol = "$1";
  ciphers = "DEFAULT:@SECLEVEL=0";
}
VirtualHost "test.example"
EOF
  ip netns exec "$srv" prosody --config "$work/prosody.cfg.lua" >/dev/null 2>&1 &
  xmpp_pid=$!
  sleep 2
}
stop_prosody() { kill "$xmpp_pid" 2>/dev/null || true; wait "$xmpp_pid" 2>/dev/null || true; }

xmpp_clients() { # old|modern
  local sc=()
  if [ "$1" = old ]; then sc=("${SC_OLD[@]}"); fi
  client 1 openssl s_client -starttls xmpp -xmpphost test.example -connect "$SERVER:5222" "${sc[@]}"
  client 2 openssl s_client -starttls xmpp-server -xmpphost test.example -connect "$SERVER:5269" "${sc[@]}"
  # A client stream as XMPP libraries write it: the XML declaration, the
  # stream header, then <starttls/> once the features arrive.
  py 3 "$1" <<'PY'
import socket, sys, ctx
s = socket.create_connection((sys.argv[1], 5222), timeout=5)
s.sendall(b"<?xml version='1.0'?><stream:stream to='test.example' version='1.0' "
          b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
buf = b""
while b"</stream:features>" not in buf:
    buf += s.recv(4096)
s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
while b"proceed" not in buf:
    buf += s.recv(4096)
t = ctx.ctx(old=sys.argv[2] == "old").wrap_socket(s, server_hostname="test.example")
t.sendall(b"<stream:stream to='test.example' version='1.0' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams'>")
t.recv(4096)
PY
}

scenario_prosody() {
  capture starttls-prosody
  start_prosody "tlsv1+"
  xmpp_clients old
  stop_prosody
  start_prosody "tlsv1_2+"
  xmpp_clients old
  xmpp_clients modern
  stop_prosody
  done_capture
}

# ---- slapd (OpenLDAP, linked with GnuTLS): the StartTLS extended operation.
start_slapd() { # GnuTLS priority string
  mkdir -p "$work/slapd"
  cat >"$work/slapd/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
pidfile $work/slapd/slapd.pid
TLSCertificateFile $CERT
TLSCertificateKeyFile $KEY
TLSCipherSuite $1
database ldif
suffix "dc=test,dc=example"
directory $work/slapd
rootdn "cn=admin,dc=test,dc=example"
rootpw secret
EOF
  ip netns exec "$srv" slapd -f "$work/slapd/slapd.conf" -h "ldap://$SERVER:389/" -u root -d 0 \
    >/dev/null 2>&1 &
  ldap_pid=$!
  sleep 1.5
}
stop_slapd() { kill "$ldap_pid" 2>/dev/null || true; wait "$ldap_pid" 2>/dev/null || true; }

ldap_clients() { # old|modern
  local prio="NORMAL" sc=()
  if [ "$1" = old ]; then prio="NORMAL:-VERS-ALL:+VERS-TLS1.0:%VERIFY_ALLOW_X509_V1_CA_CRT"; sc=("${SC_OLD[@]}"); fi
  client 1 env LDAPTLS_REQCERT=never LDAPTLS_CIPHER_SUITE="$prio" ldapsearch -x -ZZ \
    -H "ldap://$SERVER:389" -b "dc=test,dc=example" -s base
  client 2 openssl s_client -starttls ldap -connect "$SERVER:389" "${sc[@]}"
}

scenario_slapd() {
  capture starttls-slapd
  start_slapd "NORMAL:+VERS-TLS1.0:+VERS-TLS1.1"
  ldap_clients old
  stop_slapd
  start_slapd "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
  ldap_clients old
  ldap_clients modern
  stop_slapd
  done_capture
}

# ---- xrdp and FreeRDP: X.224 negotiation, then TLS (Remote Desktop).
start_xrdp() { # ssl_protocols
  mkdir -p /run/xrdp/sockdir "$work/xrdp"
  sed -e "s|^certificate=.*|certificate=$CERT|" -e "s|^key_file=.*|key_file=$KEY|" \
    -e "s|^ssl_protocols=.*|ssl_protocols=$1|" -e "s|^security_layer=.*|security_layer=negotiate|" \
    -e "s|^#\?tls_ciphers=.*|tls_ciphers=DEFAULT:@SECLEVEL=0|" /etc/xrdp/xrdp.ini >"$work/xrdp/xrdp.ini"
  ip netns exec "$srv" xrdp -n -c "$work/xrdp/xrdp.ini" -p 3389 >/dev/null 2>&1 &
  rdp_pid=$!
  sleep 1.5
}
stop_xrdp() { kill "$rdp_pid" 2>/dev/null || true; wait "$rdp_pid" 2>/dev/null || true; rm -f /run/xrdp/xrdp.pid; }

# FreeRDP's client needs an X display even to authenticate only: Xvfb. It
# has no version cap of its own (and sets its own on OpenSSL): TLS 1.0 is
# the server's choice here, with the client's security level at 0.
rdp_clients() {
  client 1 xvfb-run -a xfreerdp /v:"$SERVER" /u:user /p:secret /cert:ignore /auth-only \
    /sec:tls /tls-seclevel:0
  client 2 xvfb-run -a xfreerdp /v:"$SERVER" /u:user /p:secret /cert:ignore /auth-only \
    /tls-seclevel:0
}

scenario_xrdp() {
  capture rdp-xrdp-freerdp
  # TLS 1.0 forced by the server, then its modern default.
  start_xrdp "TLSv1"
  rdp_clients
  stop_xrdp
  start_xrdp "TLSv1.2, TLSv1.3"
  rdp_clients
  # Standard RDP security: no TLS.
  client 3 xvfb-run -a xfreerdp /v:"$SERVER" /u:user /p:secret /cert:ignore /auth-only /sec:rdp
  stop_xrdp
  done_capture
}

# ---- OpenVPN over TCP: the TLS handshake inside the control channel
# (point-to-point TLS mode, no tunnel device: `--dev null`).
openvpn_pki() {
  local d=$work/ovpn
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=census-ca" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  local who
  for who in server client; do
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$who" -keyout "$d/$who.key" \
      -out "$d/$who.csr" 2>/dev/null
    printf 'extendedKeyUsage = %s\n' "$([ $who = server ] && echo serverAuth || echo clientAuth)" \
      >"$d/$who.ext"
    openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 3650 -extfile "$d/$who.ext" -out "$d/$who.pem" 2>/dev/null
  done
  openvpn --genkey secret "$d/ta.key" >/dev/null 2>&1
}

# ovpn_session INDEX "server options" "client options": one server, one
# client connection, the handshake, then both stop.
ovpn_session() {
  local i=$1 sopts=$2 copts=$3 d=$work/ovpn
  # shellcheck disable=SC2086
  ip netns exec "$srv" openvpn --dev null --proto tcp-server --local "$SERVER" --port 1194 \
    --tls-server --ca "$d/ca.pem" --cert "$d/server.pem" --key "$d/server.key" --dh none \
    --tls-cipher "DEFAULT:@SECLEVEL=0" --verb 0 $sopts >/dev/null 2>&1 &
  local spid=$!
  sleep 1
  # shellcheck disable=SC2086
  timeout 6 ip netns exec "${nsp}h$i" openvpn --dev null --proto tcp-client --remote "$SERVER" 1194 \
    --tls-client --ca "$d/ca.pem" --cert "$d/client.pem" --key "$d/client.key" \
    --tls-cipher "DEFAULT:@SECLEVEL=0" --connect-retry-max 1 --verb 0 $copts >/dev/null 2>&1 || true
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
}

scenario_openvpn() {
  openvpn_pki
  local d=$work/ovpn
  capture openvpn-tcp
  # TLS 1.0: the client's highest version, the server allowing it.
  ovpn_session 1 "--tls-version-min 1.0" "--tls-version-max 1.0"
  ovpn_session 2 "" ""
  # tls-auth: an HMAC on every control packet (SHA256, and the default SHA1).
  ovpn_session 3 "--tls-auth $d/ta.key 0 --auth SHA256" "--tls-auth $d/ta.key 1 --auth SHA256"
  ovpn_session 4 "--tls-auth $d/ta.key 0 --tls-version-min 1.0" \
    "--tls-auth $d/ta.key 1 --tls-version-max 1.0"
  # tls-crypt: the control channel encrypted: the TLS inside is hidden.
  ovpn_session 1 "--tls-crypt $d/ta.key" "--tls-crypt $d/ta.key"
  # The server refuses TLS below 1.2.
  ovpn_session 2 "--tls-version-min 1.2" "--tls-version-max 1.1"
  done_capture
}

# ---- INN's nnrpd: an NNTP reader with STARTTLS (RFC 4642), over an empty
# spool (an active file, a history database, a tradindexed overview).
start_nnrpd() { # tlsprotocols
  local d=$work/inn c
  rm -rf "$d"
  mkdir -p "$d/spool/overview" "$d/spool/articles" "$d/db" "$d/run" "$d/etc"
  cp -r /etc/news/. "$d/etc/"
  c=$d/etc/inn.conf
  sed -i -e "s|^pathhost:.*|pathhost: news.test.example|" -e "s|^pathdb:.*|pathdb: $d/db|" \
    -e "s|^patharticles:.*|patharticles: $d/spool/articles|" -e "s|^pathrun:.*|pathrun: $d/run|" \
    -e "s|^pathoverview:.*|pathoverview: $d/spool/overview|" -e "s|^pathspool:.*|pathspool: $d/spool|" \
    -e "s|^pathetc:.*|pathetc: $d/etc|" "$c"
  cp "$CERT" "$d/cert.pem"
  cp "$KEY" "$d/key.pem"
  chmod 600 "$d/key.pem"
  cat >>"$c" <<EOF
domain: test.example
tlscertfile: $d/cert.pem
tlskeyfile: $d/key.pem
tlsprotocols: [ $1 ]
tlsciphers: "DEFAULT:@SECLEVEL=0"
EOF
  cat >"$d/etc/readers.conf" <<'EOF'
auth "all" {
  hosts: "*"
  default: "<all>"
}
access "all" {
  users: "*"
  newsgroups: "*"
}
EOF
  printf 'control 0000000000 0000000001 n\njunk 0000000000 0000000001 n\nlocal.test 0000000000 0000000001 y\n' \
    >"$d/db/active"
  touch "$d/db/newsgroups" "$d/db/history"
  chown -R news "$d"
  install -d -o news /run/news
  INNCONF=$c su news -s /bin/sh -c "/usr/lib/news/bin/makedbz -i -o" >/dev/null 2>&1
  INNCONF=$c su news -s /bin/sh -c "/usr/lib/news/bin/tdx-util -A" >/dev/null 2>&1 || true
  ip netns exec "$srv" env INNCONF="$c" /usr/lib/news/bin/nnrpd -D -f -b "$SERVER" -p 119 \
    >/dev/null 2>&1 &
  nntp_pid=$!
  sleep 1
}
stop_nnrpd() { kill "$nntp_pid" 2>/dev/null || true; wait "$nntp_pid" 2>/dev/null || true; }

nntp_clients() { # old|modern
  local sc=()
  if [ "$1" = old ]; then sc=("${SC_OLD[@]}"); fi
  # Python nntplib: CAPABILITIES, STARTTLS, CAPABILITIES again.
  py 1 "$1" <<'PY'
import nntplib, sys, ctx
n = nntplib.NNTP(sys.argv[1], 119, readermode=False, timeout=5)
n.starttls(context=ctx.ctx(old=sys.argv[2] == "old"))
n.quit()
PY
  client 2 openssl s_client -starttls nntp -connect "$SERVER:119" "${sc[@]}"
  # A reader that stays in clear text.
  py 3 <<'PY'
import nntplib, sys
n = nntplib.NNTP(sys.argv[1], 119, readermode=True, timeout=5)
n.group("local.test")
n.quit()
PY
}

scenario_inn() {
  capture starttls-inn
  start_nnrpd "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
  nntp_clients old
  stop_nnrpd
  start_nnrpd "TLSv1.2 TLSv1.3"
  nntp_clients old
  nntp_clients modern
  stop_nnrpd
  done_capture
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(postfix dovecot vsftpd prosody slapd inn xrdp openvpn)
for s in "${scenarios[@]}"; do "scenario_$s"; done
cp "$work"/*.pcap "$here/" 2>/dev/null || true
