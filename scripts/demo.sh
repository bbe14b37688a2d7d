#!/usr/bin/env bash
# The main job: `aiarch demo` scaffolds the shop as a monolith and as microservices, deploys each
# (Docker when an engine answers, else local processes), benches both with the same load, takes
# them down and prints the comparison and the report's path. Extra arguments go to `aiarch demo`
# (see `aiarch demo --help`); the work folder is .aiarch-demo/ unless --dir says otherwise.
source "$(dirname "$0")/_venv.sh"
source "$REPO/scripts/_docker.sh"
cd "$REPO"
exec aiarch demo --dir "${AIARCH_DEMO_DIR:-$REPO/.aiarch-demo}" "$@"
