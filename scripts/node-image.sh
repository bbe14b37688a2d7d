#!/usr/bin/env bash
# A local Node.js base image for services written in JavaScript (examples/node-gateway), made
# without any container registry: Debian bookworm minbase + Debian's nodejs package, and no
# Python at all (aiarch must deploy, probe and measure a service whose image holds none).
#   AIARCH_BASE_IMAGE="aiarch-base:torch,gateway=aiarch-base:node"   (elsewhere: node:20-bookworm-slim)
# Cached: rebuilt only when this recipe changes (label aiarch.recipe).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TAG=aiarch-base:node
recipe="$(sha256sum < "$HERE/node-image.sh" | cut -c1-12)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "aiarch.recipe" }}' "$TAG" 2>/dev/null)" = "$recipe" ]; then
  echo "== base image $TAG is current (recipe $recipe)"
  exit 0
fi
command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
work="$(mktemp -d /var/tmp/aiarch-node.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "== debootstrap bookworm minbase + nodejs into $rootfs (about 3 minutes)"
debootstrap --variant=minbase --include=nodejs,ca-certificates bookworm "$rootfs" \
  http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
if chroot "$rootfs" /bin/sh -c 'command -v python3 || command -v python' >/dev/null; then
  echo "== $TAG would hold a Python: it must not (it proves services need none)" >&2
  exit 1
fi
echo "== node $(chroot "$rootfs" /usr/bin/node --version)"
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* "$rootfs/tmp/"*
: > "$rootfs/etc/resolv.conf"
echo "== importing $TAG"
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' \
  -c "LABEL aiarch.recipe=$recipe" -c 'LABEL aiarch.base=true' - "$TAG" >/dev/null
docker image prune -f --filter label=aiarch.base=true >/dev/null  # the image this replaced
docker image ls "$TAG"
