#!/usr/bin/env bash
# Runs the test suite (creates .venv and installs what it needs first).
source "$(dirname "$0")/_venv.sh" test,examples
exec python -m pytest tests -q -p no:cacheprovider "$@"
