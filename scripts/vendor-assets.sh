#!/usr/bin/env bash
# Copies the web UI's front-end files from npm (server/web-assets, pinned by its
# package-lock.json) into labci_server/web/static/vendor, where the wheel ships them and
# labci serves them itself: nothing loads from another host, nothing is built at start-up.
# Run after changing server/web-assets/package.json; commit what it copies.
# tests/workspace/test_vendored_assets.py checks the copies against the lockfile's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=server/web-assets
vendor=server/src/labci_server/web/static/vendor
npm ci --prefix "$assets" --no-audit --no-fund --silent
rm -rf "$vendor" && mkdir -p "$vendor"
while read -r source target; do
  [ -n "$source" ] || continue
  mkdir -p "$(dirname "$vendor/$target")"
  cp "$assets/node_modules/$source" "$vendor/$target"
done < "$assets/vendor.txt"
echo "vendor-assets: $(wc -l < "$assets/vendor.txt") files in $vendor" >&2
