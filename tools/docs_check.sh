#!/usr/bin/env bash
# Builds the docs site (strict) and checks every page in headless Chromium at a
# desktop and a phone width: fails on content cut at the right edge, tables
# without a scroll wrapper, empty header bars, images or files that did not
# load, math KaTeX did not render, API signatures or tables that
# need horizontal scrolling on a desktop (1280 px). Writes
# full-page screenshots to build/docs_check/{desktop,phone}/ - look at them
# when reviewing a docs change. Needs Chromium (Debian: apt-get install chromium).
# Usage: bash tools/docs_check.sh [OUT_DIR]
source "$(dirname "$0")/_venv.sh" docs
export NO_MKDOCS_2_WARNING=1
OUT="${1:-build/docs_check}"
mkdir -p "$OUT"
rm -rf "$OUT/site" "$OUT/desktop" "$OUT/phone"
mkdocs build --strict --quiet -d "$OUT/site"
exec python tools/docs_check.py "$OUT/site" "$OUT"
