#!/usr/bin/env bash
# Makes the passive-host-name captures (issue 15): real DHCP, DHCPv6, mDNS,
# NBNS, DNS PTR and Kerberos traffic from real stacks, each followed by a
# legacy TLS 1.0 handshake from the named host to a Blob Storage name, so the
# flow's events and the inventory must carry the host's name.
#
#   names-dhcp.pcap      dnsmasq (DHCP server, 2-minute leases) and three
#                        clients: dhclient "alpha" gets an address and
#                        shakes hands, releases it; busybox udhcpc "bravo"
#                        asks for that same address and gets it (the address
#                        changes owner); "alpha" comes back with another
#                        address (the name changes address); "bravo" stops
#                        renewing and shakes hands again after its lease ended
#                        (no name then). dhclient -6 "charlie.corp.test" gets
#                        a DHCPv6 address (Client FQDN option) and shakes hands
#                        over IPv6.
#   names-mdns.pcap      avahi-daemon announcing host "delta" (delta.local).
#   names-nbns.pcap      nmbd registering NetBIOS name ECHO, nmblookup asking
#                        for it from another host (a positive response).
#   names-ptr.pcap       dnsmasq answering a PTR query for the client's own
#                        address with foxtrot.corp.test.
#   names-kerberos.pcap  MIT krb5kdc, kinit of machine account golf$ in realm
#                        CORP.TEST (the KDC asks for preauthentication; the
#                        AS-REQ names the host).
#
# Everything runs in private namespaces (lib.sh); no packet leaves them.
# Needs root, iproute2, tcpdump, openssl, python3, dnsmasq, isc-dhcp-client,
# busybox, avahi-daemon, samba (nmbd, nmblookup), krb5-kdc, krb5-admin-server,
# krb5-user.
#
# Usage: sudo captures/make-name-captures.sh [dhcp mdns nbns ptr kerberos]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=captures/lib.sh
. "$here/lib.sh"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(dhcp mdns nbns ptr kerberos)
topology tlsn 1:1500 2:1500 3:1500 4:1500 5:1500 6:1500

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=*.blob.core.windows.net" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
CERT=$work/cert.pem KEY=$work/key.pem
port=443
ip netns exec "$srv" ip -6 addr add 2001:db8::1/64 dev br0 nodad
# Listens on both IPv4 and IPv6 (DHCPv6's host shakes hands over IPv6).
ip netns exec "$srv" openssl s_server -quiet -accept 443 -cert "$CERT" -key "$KEY" \
  -cipher "$LEGACY" -www >/dev/null 2>&1 </dev/null &
on_exit_pids+=($!)
sleep 0.5

# hello INDEX ACCOUNT [ADDRESS]: a TLS 1.0 handshake from host INDEX.
hello() {
  timeout 5 ip netns exec "${nsp}h$1" openssl s_client -tls1 -cipher "$LEGACY" \
    -servername "$2.blob.core.windows.net" -connect "${3:-$SERVER}:443" \
    </dev/null >/dev/null 2>&1 || true
  sleep 0.3
}

capture() { start_capture "$work/$1.pcap" "$2"; }
done_capture() {
  stop_capture
  cp "$work/$1.pcap" "$here/$1.pcap"
  echo "made $1.pcap"
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$work"/*.log "$LOGS"/ 2>/dev/null; fi
}

for s in "${scenarios[@]}"; do
  case $s in
  dhcp)
    ip netns exec "$srv" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
      --port=0 --bind-interfaces --interface=br0 --pid-file= \
      --dhcp-range=192.0.2.100,192.0.2.150,2m --dhcp-range=2001:db8::100,2001:db8::1ff,64,2m \
      --domain=corp.test --dhcp-leasefile="$work/leases" \
      >"$work/dnsmasq-dhcp.log" 2>&1 &
    dhcp_pid=$!
    sleep 1
    capture names-dhcp "udp port 67 or udp port 68 or udp port 546 or udp port 547 or tcp port 443"
    for i in 1 2 3; do in_host "$i" ip addr flush dev "h$i"; done
    # alpha: dhclient, sends its host name; shakes hands; releases.
    echo 'send host-name "alpha";' >"$work/alpha.conf"
    in_host 1 dhclient -1 -cf "$work/alpha.conf" -lf "$work/alpha.leases" -pf "$work/alpha.pid" h1
    x=$(in_host 1 ip -4 -o addr show dev h1 | awk '{print $4}' | cut -d/ -f1)
    hello 1 alphaacct
    in_host 1 dhclient -r -cf "$work/alpha.conf" -lf "$work/alpha.leases" -pf "$work/alpha.pid" h1
    in_host 1 ip addr flush dev h1
    sleep 1
    # bravo: udhcpc asks for alpha's old address.
    cat >"$work/udhcpc.sh" <<'EOF'
#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr flush dev "$interface"
ip addr add "$ip/${mask:-24}" dev "$interface"
EOF
    chmod +x "$work/udhcpc.sh"
    in_host 2 busybox udhcpc -i h2 -n -q -f -x hostname:bravo -r "$x" -s "$work/udhcpc.sh" >/dev/null 2>&1
    hello 2 bravoacct
    # alpha again, on another address.
    in_host 1 busybox udhcpc -i h1 -n -q -f -x hostname:alpha -r 192.0.2.140 -s "$work/udhcpc.sh" >/dev/null 2>&1
    hello 1 alphaacct
    # charlie: DHCPv6 with the Client FQDN option.
    in_host 3 ip -6 addr add fe80::3/64 dev h3 nodad 2>/dev/null || true
    # dhclient-script adds the leased address as a /128: the subnet is on-link.
    in_host 3 ip -6 route add 2001:db8::/64 dev h3
    echo 'send fqdn.fqdn "charlie.corp.test."; send fqdn.server-update on;' >"$work/charlie.conf"
    in_host 3 timeout 20 dhclient -6 -1 -N -cf "$work/charlie.conf" -lf "$work/charlie.leases" \
      -pf "$work/charlie.pid" h3 || true
    sleep 2
    y=$(in_host 3 ip -6 -o addr show dev h3 scope global | awk '{print $4}' | cut -d/ -f1 | head -1)
    [ -n "$y" ] && hello 3 charlieacct "[2001:db8::1]"
    kill "$(cat "$work/charlie.pid" 2>/dev/null)" 2>/dev/null || true
    # bravo does not renew (udhcpc -q quit); its 2-minute lease ends.
    sleep 125
    hello 2 bravoacct
    done_capture names-dhcp
    kill "$dhcp_pid" 2>/dev/null || true
    ;;
  mdns)
    capture names-mdns "udp port 5353 or tcp port 443"
    mkdir -p "$work/avahi"
    cat >"$work/avahi.conf" <<'EOF'
[server]
host-name=delta
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=h4
enable-dbus=no
[publish]
publish-addresses=yes
publish-workstation=no
publish-hinfo=no
EOF
    # Not through in_host (a function: its subshell's PID is not the daemon's).
    ip netns exec "${nsp}h4" avahi-daemon --no-drop-root --no-chroot --no-rlimits \
      -f "$work/avahi.conf" >"$work/avahi.log" 2>&1 &
    on_exit_pids+=($!)
    sleep 6
    hello 4 deltaacct
    done_capture names-mdns
    ;;
  nbns)
    capture names-nbns "udp port 137 or tcp port 443"
    mkdir -p "$work/samba"
    cat >"$work/smb.conf" <<EOF
[global]
netbios name = ECHO
workgroup = CORP
interfaces = h5
bind interfaces only = yes
lock directory = $work/samba
state directory = $work/samba
cache directory = $work/samba
pid directory = $work/samba
private dir = $work/samba
log file = $work/samba/log.%m
disable netbios = no
EOF
    ip netns exec "${nsp}h5" nmbd -F --debug-stdout -s "$work/smb.conf" --no-process-group \
      >"$work/nmbd.log" 2>&1 &
    on_exit_pids+=($!)
    sleep 8
    in_host 6 timeout 5 nmblookup -s "$work/smb.conf" -B 192.0.2.255 ECHO >/dev/null 2>&1 || true
    hello 5 echoacct
    done_capture names-nbns
    ;;
  ptr)
    ip netns exec "$srv" dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
      --bind-interfaces --listen-address="$SERVER" --port=53 --pid-file= \
      --ptr-record=15.2.0.192.in-addr.arpa,foxtrot.corp.test \
      >"$work/dnsmasq-ptr.log" 2>&1 &
    ptr_pid=$!
    sleep 1
    capture names-ptr "udp port 53 or tcp port 443"
    in_host 5 python3 - "$SERVER" <<'PY'
import os, socket, struct, sys
q = os.urandom(2) + struct.pack(">HHHHH", 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in "15.2.0.192.in-addr.arpa".split(".")) + b"\0"
q += struct.pack(">HH", 12, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (sys.argv[1], 53))
assert struct.unpack(">H", s.recv(4096)[6:8])[0] == 1
PY
    hello 5 foxtrotacct
    done_capture names-ptr
    kill "$ptr_pid" 2>/dev/null || true
    ;;
  kerberos)
    mkdir -p "$work/krb"
    cat >"$work/krb5.conf" <<EOF
[libdefaults]
default_realm = CORP.TEST
udp_preference_limit = 1465
[realms]
CORP.TEST = {
  kdc = $SERVER
}
EOF
    cat >"$work/kdc.conf" <<EOF
[kdcdefaults]
kdc_listen = 88
[realms]
CORP.TEST = {
  database_name = $work/krb/principal
  key_stash_file = $work/krb/stash
  acl_file = $work/krb/kadm5.acl
}
EOF
    export KRB5_CONFIG=$work/krb5.conf KRB5_KDC_PROFILE=$work/kdc.conf
    kdb5_util create -s -r CORP.TEST -P masterpass >/dev/null 2>&1
    kadmin.local -r CORP.TEST -q 'addprinc -randkey +requires_preauth golf$' >/dev/null 2>&1
    ip netns exec "$srv" krb5kdc -n -r CORP.TEST >"$work/kdc.log" 2>&1 &
    on_exit_pids+=($!)
    sleep 1
    capture names-kerberos "port 88 or tcp port 443"
    in_host 6 env KRB5_CONFIG="$work/krb5.conf" KRB5CCNAME="$work/krb/cc" timeout 5 \
      kinit 'golf$@CORP.TEST' </dev/null >/dev/null 2>&1 || true
    hello 6 golfacct
    done_capture names-kerberos
    ;;
  *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
