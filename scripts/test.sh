#!/usr/bin/env bash
# The whole test suite: unit, CLI, integration on 127.0.0.1, Docker against a real engine, and the
# lint, format and strict type checks (tests/test_checks.py).
# Sets up .venv; with AIARCH_INSTALL_SYSTEM=1 (CI sets it) also installs and starts dockerd
# and installs chromium (the report test).
# Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
source "$REPO/scripts/_docker.sh"
cd "$REPO"
exec python -m pytest "$@"
