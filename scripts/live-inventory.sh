#!/usr/bin/env bash
# Live memory at the inventory's worst (issue 16): writes the `inventory`
# flood (examples/floods.rs: 100,000 hosts x 16 names of 253 bytes x 8 JA4s),
# replays it into a veth at 150,000 packets/s to `tlscensus live --all
# --state`, fetches /inventory (JSON host view and destination view) every
# half second meanwhile, then prints the bound and request counters, each
# view's status and size, and the sensor's peak RSS (VmHWM). Needs root,
# iproute2, tcpreplay, curl.
#
#   sudo scripts/live-inventory.sh [--scale F]      (BIN=PATH for another build)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${2:-1}
[ "${1:-}" = "--scale" ] || scale=1
cargo build --release --quiet --bin tlscensus --example floods
p=tlsinv
# shellcheck source=scripts/veth.sh
. scripts/veth.sh
target/release/examples/floods "$work" --scale "$scale" inventory
bin=${BIN:-target/release/tlscensus}
ip netns exec ${p}b "$bin" live -i ${p}b --all --user root --listen 127.0.0.1:19814 \
  --state "$work/state.json" --buffer-mib 256 >"$work/log" 2>&1 &
pid=$!
sleep 2
url=http://127.0.0.1:19814
( while kill -0 $pid 2>/dev/null; do
    ip netns exec ${p}b curl -s -o /dev/null "$url/inventory?format=json" || true
    ip netns exec ${p}b curl -s -o /dev/null "$url/inventory?by=destination" || true
    sleep 0.5
  done ) &
ip netns exec ${p}a tcpreplay -q -i ${p}a --pps 150000 "$work/inventory.pcap" 2>&1 | tail -n 2
sleep 65 # one state write at least
ip netns exec ${p}b curl -s "$url/metrics" \
  | grep -E '^tlscensus_(packets_total|capture_kernel_drops_total|bound_hits_total|http_requests_total)' | awk '$2 != 0'
for q in 'format=json' 'format=csv' 'by=destination' 'by=fingerprint&format=csv'; do
  ip netns exec ${p}b curl -s -o /dev/null -w "/inventory?$q: %{http_code}, %{size_download} bytes\n" "$url/inventory?$q"
done
grep -E 'VmHWM|VmRSS' /proc/$pid/status
kill -TERM $pid
wait $pid || true
ls -l "$work/state.json"
