# Sourced by scripts/demo.sh and scripts/test.sh: make .venv and install aiarch with its dev
# extra when pyproject.toml changed since the last install. Python >= 3.11 ($PYTHON to choose).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIARCH_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: aiarch needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.aiarch-installed"
wanted="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "== installing aiarch and its dev dependencies into $VENV (torch: the CPU build pinned in pyproject.toml)"
  log="$VENV/install.log"
  if ! "$VENV/bin/python" -m pip install --quiet -e "$REPO[dev]" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" | tail -n 30 >&2
    echo "error: installing aiarch's dependencies failed (full log: $log)" >&2
    exit 1
  fi
  echo "$wanted" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
