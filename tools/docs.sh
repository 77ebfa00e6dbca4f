#!/usr/bin/env bash
# Builds the documentation (API reference from docstrings) in strict mode.
source "$(dirname "$0")/_venv.sh" docs
export NO_MKDOCS_2_WARNING=1   # mkdocs-material's banner about its successor
exec mkdocs build --strict -d site "$@"
