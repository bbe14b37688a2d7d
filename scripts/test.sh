#!/usr/bin/env bash
# The whole test suite (unit, CLI, integration on 127.0.0.1). Extra arguments go to pytest.
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
exec python -m pytest "$@"
