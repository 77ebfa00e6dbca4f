# Sourced by tools/*.sh: create .venv once and install the package with the
# given extras (re-installing only when setup.cfg changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
STAMP=".venv/.installed-$1-$(cksum setup.cfg | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
  .venv/bin/python -m pip install -q -e ".[$1]"
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
