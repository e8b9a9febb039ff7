#!/usr/bin/env bash
# Scrape-load harness (issue 12): replays a capture into a veth pair at a
# fixed rate while N concurrent clients scrape /metrics in a loop, and reports
# the TLS flows `tlscensus live` counted against `tlscensus read` on the same
# file, the scrapes served, and the sensor's peak RSS. Run as root:
#   scripts/scrape-load.sh [CAPTURE] [PPS] [SCRAPERS...]
# Default: the handshake-heavy benchmark capture (scripts/throughput.sh with
# KEEP=1 writes it), 50,000 packets/s, 0 and 64 scrapers.
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-/tmp/tlscensus-bench/handshake.pcap}
pps=${2:-50000}
shift 2 || true
scrapers=("$@")
[ "${#scrapers[@]}" -gt 0 ] || scrapers=(0 64)
[ -s "$cap" ] || { echo "no capture $cap (KEEP=1 scripts/throughput.sh 1 writes it)" >&2; exit 2; }
cargo build --release --quiet --bin tlscensus
bin=$PWD/target/release/tlscensus
p=sl$$
. scripts/veth.sh
"$bin" read --no-progress --format csv --metrics-file "$work/offline.prom" "$cap" >/dev/null 2>&1
flows() { awk '/^tlscensus_flows_total\{/{s+=$2} END{print s+0}' "$1"; }
want=$(flows "$work/offline.prom")
printf "%-9s %-12s %-12s %-8s %-13s %-12s %-11s %-8s\n" scrapers flows_live flows_read lost_% kernel_drops queue_drops scrapes_ok peak_rss
for n in "${scrapers[@]}"; do
  ip netns exec ${p}b /usr/bin/time -v "$bin" live -i ${p}b --listen 127.0.0.1:19815 --user root \
    --metrics-file "$work/m.prom" 2>"$work/t.log" & pid=$!
  for _ in $(seq 100); do grep -q "metrics at" "$work/t.log" && break; sleep 0.1; done
  : >"$work/ok"
  for _ in $(seq "$n"); do
    ip netns exec ${p}b sh -c "while :; do curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 http://127.0.0.1:19815/metrics >>$work/ok; done" &
  done
  ip netns exec ${p}a tcpreplay --pps "$pps" -i ${p}a "$cap" >/dev/null 2>&1
  sleep 3
  # Stop the scrapers (their shells, then any curl left), then the sensor.
  pkill -f "127.0.0.1:19815/metrics" 2>/dev/null || true
  sleep 1
  pkill -TERM -f "^$bin live -i ${p}b" || true
  wait $pid 2>/dev/null || true
  [ -s "$work/m.prom" ] || { cat "$work/t.log" >&2; exit 1; }
  got=$(flows "$work/m.prom")
  ok=$(grep -c '^200' "$work/ok" || true)
  rss=$(awk -F': ' '/Maximum resident set size/{printf "%.0fM", $2/1024}' "$work/t.log")
  lost=$(awk -v a="$got" -v b="$want" 'BEGIN{printf "%.2f", (b-a)*100/b}')
  kd=$(awk '/^tlscensus_capture_kernel_drops_total/{s+=$2} END{print s+0}' "$work/m.prom")
  qd=$(awk '/^tlscensus_queue_drops_total /{print $2}' "$work/m.prom")
  printf "%-9s %-12s %-12s %-8s %-13s %-12s %-11s %-8s\n" "$n" "$got" "$want" "$lost" "$kd" "$qd" "$ok" "$rss"
done
