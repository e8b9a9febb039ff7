#!/usr/bin/env bash
# Checks the Debian package as an operator meets it, on this machine, as root:
# lintian; install; the demo inventory from /usr/bin; the shipped
# configuration; the units (systemd-analyze verify); the manual pages; the
# packaged Prometheus rules' own tests; the templated unit's command line,
# run as the unit runs it (the tlscensus user, CAP_NET_RAW and CAP_BPF
# ambient), serving /metrics for a replay on a veth pair in a network
# namespace of its own; then remove (configuration and data stay) and purge
# (nothing of the package is left).
#
# Usage: bash scripts/check-deb.sh [target/debian/tlscensus_*.deb]
# Needs: lintian, systemd (systemd-analyze), man-db, prometheus (promtool),
# iproute2, tcpreplay, curl, util-linux (setpriv).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t target/debian/tlscensus_*.deb | head -n 1)}
work=$(mktemp -d)
ns=tlsc-deb-$$
sensor=""
cleanup() {
    [ -n "$sensor" ] && kill "$sensor" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
step() { echo "check-deb: $*"; }

if dpkg -s tlscensus >/dev/null 2>&1; then
    dpkg -P tlscensus >/dev/null
fi

step "lintian"
lintian --allow-root --fail-on error,warning "$deb"

step "install $deb"
dpkg -i "$deb" >/dev/null
getent passwd tlscensus >/dev/null || fail "no tlscensus user"
for dir in /var/lib/tlscensus /var/log/tlscensus; do
    [ "$(stat -c %U:%G:%a "$dir")" = "tlscensus:tlscensus:750" ] || fail "$dir: $(stat -c %U:%G:%a "$dir")"
done
dpkg-query -W -f='${Conffiles}\n' tlscensus | grep -c '/etc/tlscensus/tlscensus.toml' >/dev/null ||
    fail "/etc/tlscensus/tlscensus.toml is not a conffile"

step "version and demo inventory from /usr/bin"
/usr/bin/tlscensus --version | grep -Ec '^tlscensus [0-9.]+ \(commit [0-9a-f]{7,}\)$' >/dev/null ||
    fail "--version: $(/usr/bin/tlscensus --version)"
/usr/bin/tlscensus read /usr/share/tlscensus/demo.pcapng >"$work/demo.txt" 2>"$work/demo.err"
grep -q 'legacy10.blob.core.windows.net' "$work/demo.txt" || fail "demo inventory: $(cat "$work/demo.txt")"
grep -q '4 legacy from 4 hosts' "$work/demo.txt" || fail "demo summary: $(tail -n 1 "$work/demo.txt")"

step "shipped configuration"
/usr/bin/tlscensus config check /etc/tlscensus/tlscensus.toml
/usr/bin/tlscensus config check /usr/share/doc/tlscensus/examples/live.toml

step "systemd-analyze verify"
# A unit's own problems are printed with its name; other units of the
# machine may have theirs.
systemd-analyze verify /lib/systemd/system/tlscensus.service tlscensus@lo.service >"$work/verify" 2>&1 || true
if grep -i 'tlscensus' "$work/verify"; then
    fail "systemd-analyze verify complains about the units"
fi

step "manual pages"
for page in tlscensus tlscensus-read tlscensus-live tlscensus-config tlscensus-services tlscensus-policies; do
    MANWIDTH=80 man "$page" >"$work/$page.txt" 2>/dev/null || fail "man $page"
done
grep -q -- '--kernel-skip-flows' "$work/tlscensus-live.txt" || fail "man tlscensus-live lacks --kernel-skip-flows"
grep -q -- '--config' "$work/tlscensus-read.txt" || fail "man tlscensus-read lacks --config"

step "packaged Prometheus rules"
(cd /usr/share/tlscensus/prometheus && promtool check rules tlscensus.rules.yml >/dev/null &&
    promtool test rules tlscensus.rules.test.yml >/dev/null) || fail "promtool"

step "tlscensus@IFACE's command line on a veth pair"
ip netns add "$ns"
ip -n "$ns" link add tlsc0 type veth peer name tlsc1
ip -n "$ns" link set lo up
ip -n "$ns" link set tlsc0 up
ip -n "$ns" link set tlsc1 up
cat >/etc/tlscensus/tlsc0.toml <<'TOML'
listen = "127.0.0.1:9814"
state = "/var/lib/tlscensus/tlsc0.state"
events = "/var/log/tlscensus/tlsc0.ndjson"
TOML
/usr/bin/tlscensus config check /etc/tlscensus/tlsc0.toml
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/tlscensus@.service | sed 's/%I/tlsc0/g; s/%i/tlsc0/g')
# As systemd starts it: User=tlscensus with ambient CAP_NET_RAW and CAP_BPF.
# shellcheck disable=SC2086
ip netns exec "$ns" setpriv --reuid tlscensus --regid tlscensus --init-groups \
    --inh-caps +net_raw,+bpf --ambient-caps +net_raw,+bpf \
    $exec_start 2>"$work/sensor.err" &
sensor=$!
for _ in $(seq 100); do
    grep -q 'metrics at' "$work/sensor.err" && break
    kill -0 "$sensor" 2>/dev/null || fail "sensor exited: $(cat "$work/sensor.err")"
    sleep 0.1
done
grep -q 'metrics at' "$work/sensor.err" || fail "sensor did not start: $(cat "$work/sensor.err")"
ip netns exec "$ns" tcpreplay -q -i tlsc1 --mbps 10 /usr/share/tlscensus/demo.pcapng >/dev/null 2>&1
got=""
for _ in $(seq 100); do
    got=$(ip netns exec "$ns" curl -fsS http://127.0.0.1:9814/metrics | grep -c '^tlscensus_legacy_flows_total{' || true)
    [ "$got" -ge 4 ] && break
    sleep 0.1
done
[ "$got" -ge 4 ] || fail "legacy series after the replay: $got; $(cat "$work/sensor.err")"
kill -TERM "$sensor"
wait "$sensor" || fail "sensor exit status $?: $(cat "$work/sensor.err")"
sensor=""
[ -s /var/lib/tlscensus/tlsc0.state ] || fail "no state written"
[ "$(stat -c %U /var/lib/tlscensus/tlsc0.state)" = tlscensus ] || fail "state not the sensor's"
[ "$(grep -c '"src_ip"' /var/log/tlscensus/tlsc0.ndjson)" -ge 7 ] || fail "events: $(wc -l </var/log/tlscensus/tlsc0.ndjson)"

step "remove keeps configuration and data"
dpkg -L tlscensus >"$work/files"
dpkg -r tlscensus >/dev/null
[ ! -e /usr/bin/tlscensus ] || fail "/usr/bin/tlscensus left after remove"
for kept in /etc/tlscensus/tlscensus.toml /etc/tlscensus/tlsc0.toml /var/lib/tlscensus/tlsc0.state /var/log/tlscensus/tlsc0.ndjson; do
    [ -e "$kept" ] || fail "$kept removed by remove"
done

step "purge leaves nothing"
dpkg -P tlscensus >/dev/null
while read -r path; do
    [ -d "$path" ] && [ -z "$(find "$path" -mindepth 1 -maxdepth 1 | head -n 1)" ] && case "$path" in
        */tlscensus | */tlscensus/*) fail "$path left after purge" ;;
    esac
    [ -d "$path" ] || [ ! -e "$path" ] || fail "$path left after purge"
done <"$work/files"
for gone in /etc/tlscensus /var/lib/tlscensus /var/log/tlscensus /usr/share/tlscensus /usr/share/doc/tlscensus; do
    [ ! -e "$gone" ] || fail "$gone left after purge"
done
step "ok"
