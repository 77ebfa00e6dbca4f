#!/usr/bin/env bash
# Builds the documentation (API reference from docstrings) in strict mode.
source "$(dirname "$0")/_venv.sh" docs
exec mkdocs build --strict -d site "$@"
