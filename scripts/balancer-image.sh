#!/usr/bin/env bash
# A local HAProxy image for the load balancer aiarch adds in front of replicated services, made
# without any container registry: aiarch-base:slim (scripts/base-image.sh) + Debian's haproxy
# package, downloaded by this machine's apt (the same Debian release as the base).
#   AIARCH_BALANCER_IMAGE=aiarch-base:haproxy   (elsewhere aiarch uses the official haproxy:2.6)
# Cached: rebuilt only when this recipe or the slim base changes (label aiarch.recipe).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PACKAGES="haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1 lsb-base"
base_id="$(docker image inspect -f '{{ .Id }}' aiarch-base:slim)"
recipe="$( (cat "$HERE/balancer-image.sh"; echo "$base_id") | sha256sum | cut -c1-12)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "aiarch.recipe" }}' aiarch-base:haproxy 2>/dev/null)" = "$recipe" ]; then
  echo "== balancer image aiarch-base:haproxy is current (recipe $recipe)"
  exit 0
fi
work="$(mktemp -d /var/tmp/aiarch-haproxy.XXXXXX)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
echo "== downloading $PACKAGES (Debian packages)"
(cd "$work" && { apt-get download $PACKAGES >/dev/null 2>&1 || { apt-get update -qq && apt-get download $PACKAGES >/dev/null; }; })
cat > "$work/Dockerfile" <<'DOCKERFILE'
FROM aiarch-base:slim
COPY *.deb /tmp/debs/
RUN dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs && haproxy -v | head -n 1
USER haproxy
DOCKERFILE
echo "== building aiarch-base:haproxy"
docker build -q --label "aiarch.recipe=$recipe" --label aiarch.base=true -t aiarch-base:haproxy "$work" >/dev/null
docker image ls aiarch-base:haproxy
