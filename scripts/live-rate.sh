#!/usr/bin/env bash
# Live capture rate and cost harness: replays a capture with tcpreplay into a
# veth pair between two network namespaces at rising packet rates, and
# reports for each rate what tlscensus live (with each number of capture
# threads in THREADS) and tcpdump (writing to /dev/null, same interface, same
# kernel buffer) lost, and the CPU each spent on the replay: CPU seconds
# (user + system, all threads, from /proc/PID/stat) from just before the
# replay to half a second after it (start-up and shutdown left out), and
# CPU seconds per million packets replayed. Run as root:
#   [THREADS="1 2"] [SKIP="65536 0"] [BIN=other/tlscensus] scripts/live-rate.sh [CAPTURE|bulk|handshake] [LOOPS] [RATES...]
# SKIP is the --kernel-skip-flows axis (default: the default only); "seen"
# counts the frames tlscensus read plus those the kernel skip dropped.
# CAPTURE "bulk" or "handshake" is the throughput harness's generated mix
# (examples/gen_capture; BYTES sets its size, default 50 MB). RATES are
# packets/s for tcpreplay --pps, or "top" for --topspeed.
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-captures/demo.pcapng}
loops=${2:-2000}
shift 2 || true
rates=("$@")
[ "${#rates[@]}" -gt 0 ] || rates=(50000 100000 200000 400000 top)
threads=(${THREADS:-1 2})
skips=(${SKIP:-default})
cargo build --release --quiet --bin tlscensus --example gen_capture
bin=${BIN:-$PWD/target/release/tlscensus}
p=lr$$
. scripts/veth.sh
case "$cap" in
  bulk) target/release/examples/gen_capture "$work/bulk.pcap" --bytes "${BYTES:-50000000}" \
          --handshake-share 0.07 --seed 1 --concurrent 64 >/dev/null; cap=$work/bulk.pcap ;;
  handshake) target/release/examples/gen_capture "$work/handshake.pcap" --bytes "${BYTES:-50000000}" \
          --handshake-share 0.40 --seed 2 --concurrent 256 >/dev/null; cap=$work/handshake.pcap ;;
esac
frames=$(tcpdump -nr "$cap" 2>/dev/null | wc -l)
total=$((frames * loops))
tick=$(getconf CLK_TCK)
replay() { # rate
  local opt=(--pps "$1"); [ "$1" = top ] && opt=(--topspeed)
  ip netns exec ${p}a tcpreplay "${opt[@]}" --loop "$loops" -i ${p}a "$cap" 2>&1 | grep -o 'Rated: [0-9.]* Bps, [0-9.]* Mbps, [0-9.]* pps' | grep -o '[0-9.]* pps'
}
cpu() { # pid: CPU seconds so far, all threads
  awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"
}
since() { # cpu0 pid: CPU seconds since cpu0
  awk -v a="$1" -v b="$(cpu "$2")" 'BEGIN { printf "%.2f", b - a }'
}
per_m() { # cpu packets
  awk -v c="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", c * 1e6 / n; else print "-" }'
}
# "seen" may exceed the replayed frames by a few: the kernel's own IPv6
# multicast listener reports on the new veth pass the capture filter.
echo "replayed $total frames per run ($frames x $loops) of $(basename "$cap"); CPU s/Mpkt = CPU seconds per million packets replayed"
printf "%-7s %-11s %-14s %-34s %-8s %-10s\n" rate achieved program "seen (in kernel), kernel drops, queue drops" "CPU s" "CPU s/Mpkt"
for r in "${rates[@]}"; do
  for t in "${threads[@]}"; do
  for k in "${skips[@]}"; do
    ip netns exec ${p}b "$bin" live -i ${p}b --listen 127.0.0.1:19814 --user root \
      $([ "$t" = 1 ] || echo --capture-threads "$t") $([ "$k" = default ] || echo --kernel-skip-flows "$k") \
      --metrics-file "$work/m.prom" 2>"$work/t.log" & pid=$!
    for _ in $(seq 100); do grep -q "metrics at" "$work/t.log" && break; sleep 0.1; done
    c0=$(cpu $pid); achieved=$(replay "$r"); sleep 0.5; c=$(since "$c0" $pid)
    sleep 1.5; kill -TERM $pid; wait $pid || true
    read_=$(awk '/^tlscensus_packets_total /{print $2}' "$work/m.prom")
    ks=$(awk '/^tlscensus_capture_kernel_skipped_total /{print $2}' "$work/m.prom")
    seen="$((read_ + ${ks:-0})) (${ks:-0})"
    kd=$(awk '/^tlscensus_capture_kernel_drops_total/{s+=$2} END{print s+0}' "$work/m.prom")
    qd=$(awk '/^tlscensus_queue_drops_total /{print $2}' "$work/m.prom")
    printf "%-7s %-11s %-14s %-34s %-8s %-10s\n" "$r" "$achieved" "tlsc x$t k$k" "$seen, $kd, $qd" "$c" "$(per_m "$c" "$total")"
  done
  done
  ip netns exec ${p}b tcpdump -i ${p}b -B 65536 -w /dev/null 2>"$work/d.log" & dpid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/d.log" && break; sleep 0.1; done
  c0=$(cpu $dpid); achieved=$(replay "$r"); sleep 0.5; c=$(since "$c0" $dpid)
  sleep 1.5; kill -INT $dpid; wait $dpid || true
  dcap=$(awk '/packets captured/{print $1}' "$work/d.log")
  dd=$(awk '/dropped by kernel/{print $1}' "$work/d.log")
  printf "%-7s %-11s %-14s %-34s %-8s %-10s\n" "$r" "$achieved" tcpdump "$dcap, $dd, -" "$c" "$(per_m "$c" "$total")"
done
