#!/usr/bin/env bash
# Builds the container image localhost/tlscensus:VERSION (and :latest) from
# Debian packages and the .deb, with no base image pulled: mmdebstrap makes
# the root file system (Debian's essential packages, libpcap, the package),
# podman imports it. The image runs as the tlscensus user; the binary has
# CAP_NET_RAW and CAP_BPF as permitted file capabilities (not effective, so a
# runtime that grants neither can still run `read`), which live raises at
# start when the runtime adds them (--cap-add NET_RAW,BPF).
#
# Usage: bash scripts/build-image.sh [target/debian/tlscensus_*.deb]
#   MIRROR: the Debian mirror [default: the one apt uses here, else deb.debian.org]
#   SUITE: the Debian suite [default: bookworm]
# Needs: mmdebstrap, podman (with runc on machines where crun fails).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t target/debian/tlscensus_*.deb | head -n 1)}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
version=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mmdebstrap --quiet --variant=essential --include=libpcap0.8,adduser,libcap2-bin \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="copy-in $deb /tmp" \
    --customize-hook='chroot "$1" sh -c "dpkg -i /tmp/tlscensus_*.deb && rm /tmp/tlscensus_*.deb"' \
    --customize-hook='chroot "$1" setcap cap_net_raw,cap_bpf+p /usr/bin/tlscensus' \
    --customize-hook='chroot "$1" dpkg --purge libcap2-bin >/dev/null' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$work/rootfs.tar" "$mirror"

podman import --quiet \
    --change 'USER tlscensus' \
    --change 'WORKDIR /var/lib/tlscensus' \
    --change 'ENTRYPOINT ["/usr/bin/tlscensus"]' \
    --change 'CMD ["--help"]' \
    --change "LABEL org.opencontainers.image.title=tlscensus org.opencontainers.image.version=$version" \
    "$work/rootfs.tar" "localhost/tlscensus:$version" >/dev/null
podman tag "localhost/tlscensus:$version" localhost/tlscensus:latest
podman image ls localhost/tlscensus
