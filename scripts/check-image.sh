#!/usr/bin/env bash
# Checks the container image as a container host runs it, as root: `read` on
# a mounted directory of captures, as the image's non-root user; `live` with
# only NET_RAW and BPF added, in a network namespace of its own (a veth pair,
# the demo capture replayed into it), serving /metrics and stopping cleanly.
#
# Usage: bash scripts/check-image.sh [IMAGE]  (default localhost/tlscensus:latest)
# Needs: podman and runc, iproute2, tcpreplay, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-localhost/tlscensus:latest}
podman=(podman run --runtime runc --rm)
ns=tlsc-img-$$
name=tlsc-img-$$
work=$(mktemp -d)
cleanup() {
    podman stop -t 5 "$name" >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-image: FAIL: $*" >&2; exit 1; }
step() { echo "check-image: $*"; }

step "user and version"
[ "$("${podman[@]}" --entrypoint id "$image" -un)" = tlscensus ] || fail "not the tlscensus user"
"${podman[@]}" "$image" --version | grep -c '^tlscensus ' >/dev/null || fail "--version"

step "read on a mounted directory"
"${podman[@]}" -v "$PWD/captures:/captures:ro" "$image" read --format csv /captures/demo.pcapng \
    >"$work/read.csv" 2>"$work/read.err"
target/release/tlscensus read --format csv captures/demo.pcapng >"$work/host.csv" 2>/dev/null
cmp -s "$work/read.csv" "$work/host.csv" || fail "image read differs from the host's: $(diff "$work/read.csv" "$work/host.csv" | head)"

step "live with NET_RAW and BPF, in a network namespace"
ip netns add "$ns"
ip -n "$ns" link add tlsc0 type veth peer name tlsc1
ip -n "$ns" link set lo up
ip -n "$ns" link set tlsc0 up
ip -n "$ns" link set tlsc1 up
"${podman[@]}" -d --name "$name" --network "ns:/run/netns/$ns" --cap-drop ALL --cap-add NET_RAW,BPF \
    "$image" live -i tlsc0 --listen 127.0.0.1:9814 >/dev/null
# The log is read whole before it is searched: with pipefail, grep -q
# stopping at the first match would fail the pipeline (SIGPIPE to podman).
started() { local log; log=$(podman logs "$name" 2>&1); grep -q 'metrics at' <<<"$log"; }
for _ in $(seq 100); do
    started && break
    sleep 0.1
done
started || fail "sensor did not start: $(podman logs "$name" 2>&1)"
ip netns exec "$ns" tcpreplay -q -i tlsc1 --mbps 10 captures/demo.pcapng >/dev/null 2>&1
got=0
for _ in $(seq 100); do
    got=$(ip netns exec "$ns" curl -fsS http://127.0.0.1:9814/metrics | grep -c '^tlscensus_legacy_flows_total{' || true)
    [ "$got" -ge 4 ] && break
    sleep 0.1
done
[ "$got" -ge 4 ] || fail "legacy series after the replay: $got; $(podman logs "$name" 2>&1)"
podman stop -t 10 "$name" >/dev/null
step "ok"
