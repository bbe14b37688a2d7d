#!/usr/bin/env bash
# The whole test suite: unit, CLI, integration on 127.0.0.1, Docker against a real engine, and the
# lint, format and strict type checks (tests/test_checks.py).
# Sets up .venv; with AIARCH_INSTALL_SYSTEM=1 (CI sets it) also installs and starts dockerd
# and installs chromium (the report test).
# Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
source "$REPO/scripts/_docker.sh"
cd "$REPO"
if [ "$docker_ready" = 1 ] && [ "$(id -u)" = 0 ]; then
  # The Node.js example's base (no Python in it), for the Docker test of a service in another language.
  bash scripts/node-image.sh || echo "== aiarch-base:node could not be made: the Node.js example's Docker test will fail"
fi
exec python -m pytest "$@"
