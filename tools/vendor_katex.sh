#!/usr/bin/env bash
# Copies KaTeX (the math renderer of the docs site) from the npm registry into
# docs/assets/katex, so the site renders math offline: the minified script and
# style sheet, the woff2 fonts (every current browser loads those first) and
# the licence. Usage: bash tools/vendor_katex.sh [version]
set -euo pipefail
VERSION="${1:-0.19.1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="$ROOT/docs/assets/katex"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "katex@$VERSION" >/dev/null && tar xzf katex-*.tgz)
rm -rf "$TARGET"
mkdir -p "$TARGET/fonts"
cp "$WORK/package/dist/katex.min.js" "$WORK/package/dist/katex.min.css" \
   "$WORK/package/LICENSE" "$TARGET/"
cp "$WORK/package/dist/fonts/"*.woff2 "$TARGET/fonts/"
echo "katex $VERSION (npm), copied by tools/vendor_katex.sh" > "$TARGET/VERSION"
echo "KaTeX $VERSION -> $TARGET"
