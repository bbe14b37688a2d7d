#!/usr/bin/env bash
# Local base images for the generated services, made without any container registry:
#   aiarch-base:slim   Debian bookworm minbase + Python 3.11 venv + fastapi, uvicorn, pyreqwest, orjson
#   aiarch-base:torch  the same + torch (the CPU wheel on this machine's disk) + numpy
# Cached: rebuilt only when this recipe changes (its hash is the images' aiarch.recipe label).
# Use them with AIARCH_BASE_IMAGE="aiarch-base:torch,gateway=aiarch-base:slim".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SLIM_PACKAGES="fastapi==0.165.0 uvicorn[standard]==0.54.0 pyreqwest==0.15.1 orjson==3.13.0"
TORCH_PACKAGES="torch==2.13.0 numpy==2.4.6"
CA_BUNDLE="${AIARCH_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
recipe="$(cat "$HERE/base-image.sh" | sha256sum | cut -c1-12)"

have() { [ "$(docker image inspect -f '{{ index .Config.Labels "aiarch.recipe" }}' "$1" 2>/dev/null)" = "$recipe" ]; }
if have aiarch-base:slim && have aiarch-base:torch; then
  echo "== base images aiarch-base:slim and aiarch-base:torch are current (recipe $recipe)"
  exit 0
fi

command -v debootstrap >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
work="$(mktemp -d /var/tmp/aiarch-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "== debootstrap bookworm minbase into $rootfs (about 3 minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
  http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" /usr/bin/python3 -m venv /opt/venv
in_chroot_pip() {
  # env -i: none of this machine's pip settings (find-links, constraints) apply inside.
  chroot "$rootfs" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /opt/venv/bin/pip install --quiet "$@"
}
clean_and_import() {
  local tag="$1"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"* "$rootfs/tmp/"*
  : > "$rootfs/etc/resolv.conf"
  echo "== importing $tag"
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c "LABEL aiarch.recipe=$recipe" -c 'LABEL aiarch.base=true' - "$tag" >/dev/null
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
}
echo "== installing $SLIM_PACKAGES"
in_chroot_pip $SLIM_PACKAGES
clean_and_import aiarch-base:slim
echo "== installing $TORCH_PACKAGES (torch from /opt/wheels)"
mkdir -p "$rootfs/tmp/wheels"
cp /opt/wheels/torch-2.13.0*.whl "$rootfs/tmp/wheels/"
in_chroot_pip --find-links /tmp/wheels $TORCH_PACKAGES
clean_and_import aiarch-base:torch
docker image prune -f --filter label=aiarch.base=true >/dev/null  # the images these replaced
docker image ls aiarch-base
