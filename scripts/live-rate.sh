#!/usr/bin/env bash
# Live capture rate harness: replays a capture with tcpreplay into a veth pair
# between two network namespaces at rising packet rates, and reports for each
# rate the packets tlscensus live and tcpdump (writing to /dev/null, same
# interface, same kernel buffer) lost. Run as root:
#   scripts/live-rate.sh [CAPTURE] [LOOPS] [RATES...]
# RATES are packets/s for tcpreplay --pps, or "top" for --topspeed.
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-captures/demo.pcapng}
loops=${2:-2000}
shift 2 || true
rates=("$@")
[ "${#rates[@]}" -gt 0 ] || rates=(50000 100000 200000 400000 top)
cargo build --release --quiet
bin=$PWD/target/release/tlscensus
p=lr$$
. scripts/veth.sh
frames=$(tcpdump -r "$cap" 2>/dev/null | wc -l)
total=$((frames * loops))
replay() { # rate
  local opt=(--pps "$1"); [ "$1" = top ] && opt=(--topspeed)
  ip netns exec ${p}a tcpreplay "${opt[@]}" --loop "$loops" -i ${p}a "$cap" 2>&1 | grep -o 'Rated: [0-9.]* Bps, [0-9.]* Mbps, [0-9.]* pps' | grep -o '[0-9.]* pps'
}
# "seen" may exceed the replayed frames by a few: the kernel's own IPv6
# multicast listener reports on the new veth pass the capture filter.
echo "replayed $total frames per run ($frames x $loops) of $cap"
printf "%-8s %-14s %-40s %-30s\n" rate achieved "tlscensus: seen, kernel drops, queue drops" "tcpdump: captured, kernel drops"
for r in "${rates[@]}"; do
  # tlscensus
  ip netns exec ${p}b "$bin" live -i ${p}b --listen 127.0.0.1:19814 --user root \
    --metrics-file "$work/m.prom" 2>"$work/t.log" & pid=$!
  for _ in $(seq 100); do grep -q "metrics at" "$work/t.log" && break; sleep 0.1; done
  achieved=$(replay "$r")
  sleep 2; kill -TERM $pid; wait $pid || true
  seen=$(awk '/^tlscensus_packets_total /{print $2}' "$work/m.prom")
  kd=$(awk '/^tlscensus_capture_kernel_drops_total/{s+=$2} END{print s+0}' "$work/m.prom")
  qd=$(awk '/^tlscensus_queue_drops_total /{print $2}' "$work/m.prom")
  # tcpdump
  ip netns exec ${p}b tcpdump -i ${p}b -B 65536 -w /dev/null 2>"$work/d.log" & dpid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/d.log" && break; sleep 0.1; done
  replay "$r" >/dev/null
  sleep 2; kill -INT $dpid; wait $dpid || true
  dcap=$(awk '/packets captured/{print $1}' "$work/d.log")
  dd=$(awk '/dropped by kernel/{print $1}' "$work/d.log")
  printf "%-8s %-14s %-40s %-30s\n" "$r" "$achieved" "$seen, $kd, $qd" "$dcap, $dd"
done
