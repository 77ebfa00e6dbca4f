# Sourced by tools/*.sh: create the virtual environment $VENV (.venv unless
# set) once and install the package with the given extras, then any further
# requirements given (`source _venv.sh test "keras==3.10.*"`); re-installs
# only when setup.cfg or the arguments change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
STAMP="$VENV/.installed-$1-$( (cksum < setup.cfg; echo "$*") | cksum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q -e ".[$1]" "${@:2}"
  touch "$STAMP"
fi
export PATH="$ROOT/$VENV/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
