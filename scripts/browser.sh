#!/usr/bin/env bash
# A browser for the page tests (tests/e2e/test_browser_*.py): installs Debian's chromium when
# it is missing. Playwright drives it through its executable path (LABCI_TEST_BROWSER); it
# never downloads a browser of its own. Idempotent; needs root (CI machines run as root).
set -euo pipefail
BROWSER="${LABCI_TEST_BROWSER:-/usr/bin/chromium}"
if [ ! -x "$BROWSER" ]; then
  echo "browser: installing chromium (apt-get)…" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x "$BROWSER" ] || { echo "browser: $BROWSER is still missing after apt-get" >&2; exit 1; }
echo "browser: $("$BROWSER" --version 2>/dev/null || echo "$BROWSER")" >&2
