#!/usr/bin/env bash
# Builds the Debian package: target/debian/tlscensus_VERSION-1_ARCH.deb.
#
# The release binary first; then what is generated from it (the manual pages
# and shell completions from the clap definitions, the annotated example
# configuration, the copyright file with the licence of every crate linked
# in), so none of them can drift from the code; then `cargo deb --no-build`
# packs them with the assets listed in Cargo.toml ([package.metadata.deb]).
#
# Needs: cargo-deb (cargo install --locked cargo-deb), dpkg-dev (dpkg-shlibdeps
# computes the dependencies from the binary), libpcap-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
bin=target/release/tlscensus
out=target/package
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
"$bin" generate man "$out/man"
"$bin" generate completions bash >"$out/completions/tlscensus.bash"
"$bin" generate completions zsh >"$out/completions/_tlscensus"
"$bin" generate completions fish >"$out/completions/tlscensus.fish"
"$bin" config example >"$out/config-example.toml"
{
    cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tlscensus

Files: *
Copyright: 2026 the tlscensus developers
License: tlscensus
 All rights reserved by the tlscensus developers; no licence to
 redistribute or modify is granted by this package.
Comment: The binary links these Rust crates statically; each is under the
 licence named (SPDX expressions, as the crate declares them):
HEAD
    cargo tree --locked -e normal --prefix none -f '{p} {l}' |
        grep -v '^tlscensus ' | sed 's/ (\*)$//; s/ (proc-macro)//' | sort -u |
        awk '{ name=$1; ver=$2; $1=""; $2=""; sub(/^ +/, ""); printf " %s %s: %s\n", name, ver, $0 }'
} >"$out/copyright"
cargo deb --no-build --locked --strip "$@"
ls -l target/debian/*.deb
