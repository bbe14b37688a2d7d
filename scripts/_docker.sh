# Sourced by scripts/test.sh and scripts/demo.sh after _venv.sh: when a Docker engine answers
# (or, with AIARCH_INSTALL_SYSTEM=1 and root, after installing and starting one, and installing
# Debian's chromium for the report test, haproxy for replicated services and nodejs for the Node.js
# example), make the local base images (cached) and point
# AIARCH_BASE_IMAGE (and AIARCH_BALANCER_IMAGE, HAProxy's) at them unless it is already set.
# Never fatal: without an engine, Docker tests skip (or fail under CI) and the demo runs locally.
docker_ready=0
if [ "${AIARCH_INSTALL_SYSTEM:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then
  bash "$REPO/scripts/docker-engine.sh" || echo "== no Docker engine (see above)"
  if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
    echo "== installing haproxy (Debian): the load balancer of replicated services on the local runtime"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; } \
      || echo "== haproxy could not be installed"
  fi
  if ! command -v node >/dev/null 2>&1; then
    echo "== installing nodejs (Debian): the Node.js gateway example on the local runtime"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null; } \
      || echo "== nodejs could not be installed"
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (Debian) for the report test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "== chromium could not be installed"
  fi
fi
if docker info >/dev/null 2>&1; then
  docker_ready=1
  if [ -z "${AIARCH_BASE_IMAGE:-}" ] && [ "$(id -u)" = 0 ]; then
    if bash "$REPO/scripts/base-image.sh"; then
      export AIARCH_BASE_IMAGE="aiarch-base:torch,gateway=aiarch-base:slim"
      if [ -z "${AIARCH_BALANCER_IMAGE:-}" ] && bash "$REPO/scripts/balancer-image.sh"; then
        export AIARCH_BALANCER_IMAGE="aiarch-base:haproxy"
      fi
    else
      echo "== local base images could not be made; builds use the Dockerfiles' default base image"
    fi
  fi
else
  echo "== no Docker engine answers: Docker tests skip locally (and fail under CI); the demo uses local processes"
fi
