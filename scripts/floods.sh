#!/usr/bin/env bash
# The flood harness (issue 12): writes each flood (examples/floods.rs) and
# runs `tlscensus read --all` over it with /usr/bin/time -v; prints peak RSS,
# wall time, the number of series in the metrics output and every counter
# that says a bound was hit.
#
#   scripts/floods.sh [--scale F] [--bin PATH] [--keep DIR] [FLOOD...]
#
# --bin runs another build (e.g. an older commit's) on the same floods, for
# before/after figures; --keep writes the floods to DIR and keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=1
bin=""
keep=""
floods=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) floods+=("$1"); shift ;;
  esac
done
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian: time)" >&2; exit 2; }
cargo build --release --quiet --bin tlscensus --example floods
bin=${bin:-target/release/tlscensus}
dir=${keep:-$(mktemp -d)}
[ -n "$keep" ] || trap 'rm -rf "$dir"' EXIT
[ "${#floods[@]}" -gt 0 ] || floods=(versions sources ooo frag_big frag_lone syn dns preamble opening names destinations inventory blocks regulars)
# Options a flood needs to reach its bounds.
declare -A extra=([destinations]="--raw-fingerprints --services microsoft")
for f in "${floods[@]}"; do
  [ -s "$dir/$f.pcap" ] || target/release/examples/floods "$dir" --scale "$scale" "$f"
done
printf '%-10s %9s %9s %8s %8s  %s\n' flood frames rss_mib secs series "bounds hit / counters"
for f in "${floods[@]}"; do
  prom="$dir/$f.prom"
  rm -f "$prom"
  log=$(/usr/bin/time -v "$bin" read --all --no-progress ${extra[$f]:-} --format csv --metrics-file "$prom" "$dir/$f.pcap" 2>&1 >/dev/null) || true
  rss=$(awk -F: '/Maximum resident set size/ {printf "%.1f", $2/1024}' <<<"$log")
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' <<<"$log")
  if [ -s "$prom" ]; then
    frames=$(awk '/^tlscensus_packets_total /{print $2}' "$prom")
    series=$(grep -cv '^#' "$prom")
    hits=$(grep -E '^tlscensus_(bound_hits_total|ip_fragments_total|anomalies_total|flow_evictions_total|target_flows_total\{match="dns_address"\})' "$prom" \
      | awk '$2 != 0 {sub(/^tlscensus_/, ""); printf "%s=%s ", $1, $2}')
  else
    frames="-"; series="-"; hits="(no metrics file: $(tail -n 1 <<<"$log"))"
  fi
  printf '%-10s %9s %9s %8s %8s  %s\n' "$f" "$frames" "$rss" "$secs" "$series" "$hits"
done
