# Sourced by the other scripts: makes sure uv and the workspace's dependencies are installed.
# A fresh machine has Python, git and Node; everything else comes from here.
# uv comes from PATH, from `python3 -m uv`, or else is installed into a private virtual
# environment of the project (.venv-tools, git-ignored): an externally-managed Python
# (Debian 12, Ubuntu 23.04+, Homebrew) refuses `pip install` outside a venv (PEP 668).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS_VENV=.venv-tools
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
  UV=(python3 -m uv)
else
  if [ ! -x "$TOOLS_VENV/bin/uv" ]; then
    echo "bootstrap: installing uv into $TOOLS_VENV…" >&2
    python3 -m venv "$TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
  fi
  UV=("$TOOLS_VENV/bin/uv")
fi
echo "bootstrap: syncing the Python workspace (uv sync --locked)…" >&2
"${UV[@]}" sync --locked --quiet
