"""uv for tests that build and install labci's wheels as a user would: found where `uv run`,
PATH or the project's .venv-tools (scripts/bootstrap.sh) put it, run in an environment with
nothing of the workspace's virtual environment, offline first (uv's cache), pinned to
uv.lock's versions either way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers.services import missing_service

ROOT = Path(__file__).resolve().parents[2]


def find_uv() -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), ROOT / ".venv-tools/bin/uv"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    missing_service("uv", "no uv from `uv run`, on PATH or in .venv-tools (scripts/bootstrap.sh)")


def clean_env(tmp_path: Path) -> dict[str, str]:
    """No workspace: no VIRTUAL_ENV, no PYTHONPATH, no .venv/bin on PATH, uv's settings only
    the cache; tools and their executables go under `tmp_path`."""
    workspace_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != workspace_bin]
    # And how this machine reaches PyPI: its CA bundle (a TLS-inspecting proxy) and proxies.
    kept = ("HOME", "UV_CACHE_DIR", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
    keep = {k: v for k, v in os.environ.items() if k in kept or k.lower().endswith("_proxy")}
    return {
        **keep,
        "PATH": os.pathsep.join(path),
        "UV_TOOL_DIR": str(tmp_path / "tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, **kwargs)


def uv_offline_first(uv: str, args: list[str], **kwargs: Any) -> None:
    """`uv ARGS --offline`; again with the network when the cache lacks something."""
    done = run([uv, *args, "--offline"], **kwargs)
    if done.returncode != 0:
        done = run([uv, *args], **kwargs)
    assert done.returncode == 0, f"uv {' '.join(args)}: {done.stderr}"
