#!/usr/bin/env bash
# Makes services.pcap (issue 16): real clients reach Microsoft service names
# (Storage blob and files, SQL, Service Bus, Key Vault, App Service, Cosmos
# DB, IoT Hub, Redis, Entra ID sign-in), each mapped to a local OpenSSL
# s_server by /etc/netns/<host>/hosts, legacy and modern, so every flow's
# service, destination and deadline can be asserted. One client without SNI
# reaches a storage account behind a private endpoint, known only through
# passive DNS (dnsmasq answers pe1.blob.core.windows.net with a CNAME to its
# privatelink name and an address).
#
# Hosts: .11 OpenSSL s_client, .12 curl, .13 Python, .14 Java, .15 GnuTLS,
# .16 Python without SNI (and a DNS query first). Server 192.0.2.1:443
# (SECLEVEL=0, so TLS 1.0 and 1.1 complete), DNS on 192.0.2.1:53.
#
# Needs root, iproute2, tcpdump, openssl, curl, python3, default-jre-headless,
# gnutls-bin, dnsmasq. Usage: sudo captures/make-service-captures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
topology tlss 1:1500 2:1500 3:1500 4:1500 5:1500 6:1500

NAMES=(legacyacct.blob.core.windows.net files1.file.core.windows.net srv1.database.windows.net
  ns1.servicebus.windows.net vault1.vault.azure.net app1.azurewebsites.net acct1.documents.azure.com
  hub1.azure-devices.net cache1.redis.cache.windows.net login.microsoftonline.com
  modernacct.blob.core.windows.net)
for i in 1 2 3 4 5 6; do
  mkdir -p "/etc/netns/${nsp}h$i"
  for n in "${NAMES[@]}"; do echo "$SERVER $n"; done >"/etc/netns/${nsp}h$i/hosts"
  echo "nameserver $SERVER" >"/etc/netns/${nsp}h$i/resolv.conf"
done
trap 'for i in 1 2 3 4 5 6; do rm -rf "/etc/netns/${nsp}h$i"; done; teardown' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=services.test" \
  -addext "subjectAltName=DNS:*.blob.core.windows.net,DNS:*.file.core.windows.net,DNS:*.database.windows.net,DNS:*.servicebus.windows.net,DNS:*.vault.azure.net,DNS:*.azurewebsites.net,DNS:*.documents.azure.com,DNS:*.azure-devices.net,DNS:*.redis.cache.windows.net,DNS:login.microsoftonline.com,DNS:*.privatelink.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
ip netns exec "$srv" openssl s_server -quiet -accept 443 -cert "$work/cert.pem" -key "$work/key.pem" \
  -cipher "$LEGACY" -www >/dev/null 2>&1 </dev/null &
on_exit_pids+=($!)
ip netns exec "$srv" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
  --bind-interfaces --listen-address="$SERVER" --port=53 --pid-file= --local-ttl=300 \
  --host-record=pe1.privatelink.blob.core.windows.net,"$SERVER" \
  --cname=pe1.blob.core.windows.net,pe1.privatelink.blob.core.windows.net,300 \
  >"$work/dnsmasq.log" 2>&1 &
on_exit_pids+=($!)
sleep 1

run() { # HOST COMMAND...
  local h=$1; shift
  timeout 20 ip netns exec "${nsp}h$h" "$@" </dev/null >/dev/null 2>&1 || true
  sleep 0.3
}
L0=$LEGACY

java_client "$work"

start_capture "$work/services.pcap" "tcp port 443 or udp port 53"
# OpenSSL s_client (h1): Storage blob TLS 1.0, SQL TLS 1.1, Service Bus TLS 1.2, Key Vault TLS 1.0.
run 1 openssl s_client -tls1 -cipher "$L0" -connect legacyacct.blob.core.windows.net:443 -servername legacyacct.blob.core.windows.net
run 1 openssl s_client -tls1_1 -cipher "$L0" -connect srv1.database.windows.net:443 -servername srv1.database.windows.net
run 1 openssl s_client -tls1_2 -connect ns1.servicebus.windows.net:443 -servername ns1.servicebus.windows.net
run 1 openssl s_client -tls1 -cipher "$L0" -connect vault1.vault.azure.net:443 -servername vault1.vault.azure.net
# curl (h2): App Service TLS 1.0, Cosmos DB default, IoT Hub TLS 1.1.
run 2 curl -sk --tlsv1.0 --tls-max 1.0 --ciphers "$L0" https://app1.azurewebsites.net/
run 2 curl -sk https://acct1.documents.azure.com/
run 2 curl -sk --tlsv1.1 --tls-max 1.1 --ciphers "$L0" https://hub1.azure-devices.net/
# Python (h3): Redis TLS 1.0, Entra ID sign-in default.
cat >"$work/client.py" <<EOF
import socket, ssl, sys
name, mode = sys.argv[1], sys.argv[2]
c = ssl.create_default_context()
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
if mode != "default":
    c.set_ciphers("$L0")
    c.minimum_version = c.maximum_version = getattr(ssl.TLSVersion, mode)
sni = None if len(sys.argv) > 3 else name
c.wrap_socket(socket.create_connection((name, 443)), server_hostname=sni).close()
EOF
run 3 /usr/bin/python3 "$work/client.py" cache1.redis.cache.windows.net TLSv1
run 3 /usr/bin/python3 "$work/client.py" login.microsoftonline.com default
# Java (h4): Storage files TLS 1.0.
run 4 java -Djava.security.properties="$work/java-legacy.security" "$work/Client.java" files1.file.core.windows.net 443 TLSv1
# GnuTLS (h5): the legacy storage account again, TLS 1.0; a modern account.
run 5 gnutls-cli --insecure --priority NORMAL:-VERS-ALL:+VERS-TLS1.0 -p 443 legacyacct.blob.core.windows.net
run 5 gnutls-cli --insecure -p 443 modernacct.blob.core.windows.net
# Python without SNI (h6): resolves pe1.blob.core.windows.net through DNS
# (CNAME to the private endpoint), then TLS 1.0 to the address.
run 6 /usr/bin/python3 "$work/client.py" pe1.blob.core.windows.net TLSv1 nosni
stop_capture
cp "$work/services.pcap" "$here/services.pcap"
echo "made services.pcap"
