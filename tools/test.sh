#!/usr/bin/env bash
# Runs the test suite (creates .venv and installs what it needs first):
# newest supported Keras, TensorFlow backend. Extra arguments go to pytest.
#   tools/test.sh --matrix [CELL...]   every supported Keras and backend
#                                      (what CI runs; see tools/_matrix.sh)
if [ "${1:-}" = "--matrix" ]; then
  shift
  exec bash "$(dirname "$0")/_matrix.sh" "$@"
fi
source "$(dirname "$0")/_venv.sh" test,examples
exec python -m pytest tests -q -p no:cacheprovider "$@"
