#!/usr/bin/env bash
# Whole-program throughput harness (README "Performance").
#
# Builds the release binary and the examples, generates two benchmark captures
# from the real handshakes in captures/ (bulk-heavy: 7% handshake packets;
# handshake-heavy: 40%), reads each once into the page cache, then runs the
# bare libpcap read loop (examples/pcap_loop.rs), the same loop over
# tlscensus' own block reader (`pcap_loop --blocks`, what `read` uses for
# classic pcap files) and `tlscensus read` with default settings alternately
# RUNS times on the same file, and prints the median wall times, the ratios
# to both loops, packets/s, bytes/s and peak RSS (/usr/bin/time -v).
# ndpiReader and tshark get columns when installed. Then the formats: the
# same packets as pcapng and through standard input, against the file.
#
#   scripts/throughput.sh [RUNS] [BULK_BYTES] [HS_BYTES]
#   KEEP=1 keeps the captures in $OUT (default /tmp/tlscensus-bench); BIN=PATH
#   times another tlscensus build (an older commit) against the same loops.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
bulk_bytes=${2:-1000000000}
hs_bytes=${3:-300000000}
out=${OUT:-/tmp/tlscensus-bench}
mkdir -p "$out"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package time)"; exit 2; }
cargo build --release --quiet --bin tlscensus --example pcap_loop --example gen_capture
bin=${BIN:-target/release/tlscensus}
loop=target/release/examples/pcap_loop
gen=target/release/examples/gen_capture

[ -s "$out/bulk.pcap" ] || $gen "$out/bulk.pcap" --bytes "$bulk_bytes" --handshake-share 0.07 --seed 1 --concurrent 64
[ -s "$out/handshake.pcap" ] || $gen "$out/handshake.pcap" --bytes "$hs_bytes" --handshake-share 0.40 --seed 2 --concurrent 256

# One timed run: prints "seconds maxrss_kb". Wall time from bash's
# microsecond clock (/usr/bin/time -v rounds to 10 ms); RSS from time -v.
timed() {
  local t0 t1 rss
  t0=$EPOCHREALTIME
  /usr/bin/time -v "$@" >/dev/null 2>"$out/time.log" || { cat "$out/time.log" >&2; return 1; }
  t1=$EPOCHREALTIME
  rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$out/time.log")
  awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN{printf "%.4f %s\n", b-a, r}'
}
median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

# ratio: of the median times; pair_r: median of the ratios of each adjacent
# (loop, tlscensus) pair, which cancels slow drifts of a shared machine;
# min_r: of the fastest runs.
# blk_s, r_blk: the block-reader loop and tlscensus' ratio to it (median of pairs).
printf "%-12s %-9s %-8s %-8s %-8s %-6s %-7s %-6s %-6s %-10s %-10s %-9s %-9s\n" capture packets loop_s blk_s tlsc_s ratio pair_r min_r r_blk tlsc_Mpps tlsc_MB/s loop_RSS tlsc_RSS
for name in bulk handshake; do
  f="$out/$name.pcap"
  cat "$f" >/dev/null   # page cache
  packets=$($loop "$f" | awk '{print $1}')
  bytes=$(stat -c %s "$f")
  : >"$out/loop.t"; : >"$out/blk.t"; : >"$out/tlsc.t"; : >"$out/ndpi.t"; : >"$out/tshark.t"
  for _ in $(seq "$runs"); do
    timed $loop "$f" >>"$out/loop.t"
    timed $loop --blocks "$f" >>"$out/blk.t"
    timed $bin read --no-progress --format csv "$f" >>"$out/tlsc.t"
  done
  bt=$(awk '{print $1}' "$out/blk.t" | median)
  br=$(paste "$out/blk.t" "$out/tlsc.t" | awk '{print $3/$1}' | median)
  lt=$(awk '{print $1}' "$out/loop.t" | median); tt=$(awk '{print $1}' "$out/tlsc.t" | median)
  lr=$(awk '{print $2}' "$out/loop.t" | sort -n | tail -1); tr=$(awk '{print $2}' "$out/tlsc.t" | sort -n | tail -1)
  pr=$(paste "$out/loop.t" "$out/tlsc.t" | awk '{print $3/$1}' | median)
  lm=$(awk '{print $1}' "$out/loop.t" | sort -g | head -1); tm=$(awk '{print $1}' "$out/tlsc.t" | sort -g | head -1)
  printf "%-12s %-9s %-8s %-8s %-8s %-6s %-7s %-6s %-6s %-10s %-10s %-9s %-9s\n" "$name" "$packets" "$lt" "$bt" "$tt" \
    "$(awk -v a="$tt" -v b="$lt" 'BEGIN{printf "%.2f", a/b}')" "$(printf %.2f "$pr")" \
    "$(awk -v a="$tm" -v b="$lm" 'BEGIN{printf "%.2f", a/b}')" "$(printf %.2f "$br")" \
    "$(awk -v p="$packets" -v t="$tt" 'BEGIN{printf "%.2f", p/t/1e6}')" \
    "$(awk -v p="$bytes" -v t="$tt" 'BEGIN{printf "%.0f", p/t/1e6}')" "${lr}K" "${tr}K"
  if command -v ndpiReader >/dev/null; then
    nt=$(timed ndpiReader -i "$f" -q | awk '{print $1}')
    echo "  ndpiReader: ${nt}s ($(awk -v a="$nt" -v b="$lt" 'BEGIN{printf "%.1f", a/b}')x the loop)"
  fi
  if command -v tshark >/dev/null && [ "${TSHARK:-0}" = 1 ]; then
    st=$(timed tshark -r "$f" -Y tls.handshake.type==1 -T fields -e tls.handshake.version | awk '{print $1}')
    echo "  tshark: ${st}s ($(awk -v a="$st" -v b="$lt" 'BEGIN{printf "%.1f", a/b}')x the loop)"
  fi
done
# Formats (issue 17): the same packets as pcapng (editcap), and classic pcap
# through standard input, each timed alternately with the file itself;
# ratios are medians of adjacent pairs. FORMATS=0 skips this part.
if [ "${FORMATS:-1}" = 1 ] && command -v editcap >/dev/null; then
  printf "%-12s %-8s %-8s %-8s %-9s %-9s\n" capture pcap_s ng_s stdin_s ng/pcap stdin/pcap
  for name in bulk handshake; do
    f="$out/$name.pcap"; ng="$out/$name.pcapng"
    [ -s "$ng" ] || editcap -F pcapng "$f" "$ng"
    cat "$f" "$ng" >/dev/null
    : >"$out/f_pcap.t"; : >"$out/f_ng.t"; : >"$out/f_stdin.t"
    for _ in $(seq "$runs"); do
      timed $bin read --no-progress --format csv "$f" >>"$out/f_pcap.t"
      timed $bin read --no-progress --format csv "$ng" >>"$out/f_ng.t"
      timed sh -c "cat '$f' | $bin read --no-progress --format csv -" >>"$out/f_stdin.t"
    done
    printf "%-12s %-8s %-8s %-8s %-9s %-9s\n" "$name" \
      "$(awk '{print $1}' "$out/f_pcap.t" | median)" "$(awk '{print $1}' "$out/f_ng.t" | median)" \
      "$(awk '{print $1}' "$out/f_stdin.t" | median)" \
      "$(paste "$out/f_pcap.t" "$out/f_ng.t" | awk '{print $3/$1}' | median | xargs printf %.2f)" \
      "$(paste "$out/f_pcap.t" "$out/f_stdin.t" | awk '{print $3/$1}' | median | xargs printf %.2f)"
  done
fi
# Compressed (issue 17): gzip -1 and zstd -3 copies, `read` against the
# decompressor alone writing to /dev/null (the floor), pairs alternated.
if [ "${FORMATS:-1}" = 1 ] && command -v zstd >/dev/null && command -v gzip >/dev/null; then
  printf "%-12s %-8s %-8s %-8s %-9s %-8s %-8s %-8s\n" capture zcat_s gz_s gz/zcat zstd-dc_s zst_s zst/dc zst_RSS
  for name in bulk handshake; do
    f="$out/$name.pcap"
    [ -s "$f.gz" ] || gzip -1 -c "$f" >"$f.gz"
    [ -s "$f.zst" ] || zstd -q -3 -c "$f" >"$f.zst"
    cat "$f.gz" "$f.zst" >/dev/null
    : >"$out/c_zcat.t"; : >"$out/c_gz.t"; : >"$out/c_dc.t"; : >"$out/c_zst.t"
    for _ in $(seq "$runs"); do
      timed zcat "$f.gz" >>"$out/c_zcat.t"
      timed $bin read --no-progress --format csv "$f.gz" >>"$out/c_gz.t"
      timed zstd -dc "$f.zst" >>"$out/c_dc.t"
      timed $bin read --no-progress --format csv "$f.zst" >>"$out/c_zst.t"
    done
    printf "%-12s %-8s %-8s %-8s %-9s %-8s %-8s %-8s\n" "$name" \
      "$(awk '{print $1}' "$out/c_zcat.t" | median)" "$(awk '{print $1}' "$out/c_gz.t" | median)" \
      "$(paste "$out/c_zcat.t" "$out/c_gz.t" | awk '{print $3/$1}' | median | xargs printf %.2f)" \
      "$(awk '{print $1}' "$out/c_dc.t" | median)" "$(awk '{print $1}' "$out/c_zst.t" | median)" \
      "$(paste "$out/c_dc.t" "$out/c_zst.t" | awk '{print $3/$1}' | median | xargs printf %.2f)" \
      "$(awk '{print $2}' "$out/c_zst.t" | sort -n | tail -1)K"
  done
fi
[ "${KEEP:-0}" = 1 ] || rm -f "$out/bulk.pcap" "$out/handshake.pcap" "$out"/*.pcapng "$out"/*.gz "$out"/*.zst
