"""The web UI's static files, served by labci itself under /static (public: no secret is
in them). `static/vendor` holds the front-end packages copied from npm by
scripts/vendor-assets.sh; they ship in the wheel, so nothing loads from another host and
nothing is built at start-up."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def static_url(path: str) -> str:
    """The address of a static file, versioned by its modification time so that a browser
    never keeps an old copy after an upgrade."""
    version = int((STATIC_DIR / path).stat().st_mtime)
    return f"/static/{path}?v={version}"
