# Sourced by the other scripts: makes sure uv and the workspace's dependencies are installed.
# A fresh machine has Python, pip, git and Node; everything else comes from here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "bootstrap: installing uv with pip…" >&2
    python3 -m pip install --quiet --disable-pip-version-check uv
  fi
  UV=(python3 -m uv)
fi
echo "bootstrap: syncing the Python workspace (uv sync --locked)…" >&2
"${UV[@]}" sync --locked --quiet
