"""The forges of a server process, built once from its settings."""

from __future__ import annotations

from typing import Any

import httpx

from ..settings import Settings
from .base import Forge
from .github import GitHubForge
from .github_app import InstallationTokens
from .gitlocal import GitLocalForge


def build_forges(settings: Settings, sc_sessions: Any, http: httpx.AsyncClient) -> dict[str, Forge]:
    token = settings.github_token.get_secret_value() if settings.github_token else None
    app = None
    if settings.github_app_id and settings.github_private_key:
        app = InstallationTokens(
            http,
            api_url=settings.github_api_url,
            app_id=settings.github_app_id,
            # Environments often carry a PEM on one line, with its line breaks written `\n`.
            private_key=settings.github_private_key.get_secret_value().replace("\\n", "\n"),
        )
    return {
        "github": GitHubForge(http, api_url=settings.github_api_url, token=token, app=app),
        "git": GitLocalForge(sc_sessions),
    }
