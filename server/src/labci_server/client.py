"""The CLI's HTTP client for a labci server: personal API tokens, kept per server by
`labci login` in LABCI_CREDENTIALS_FILE (mode 0600), or given as LABCI_API_TOKEN."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from .errors import BadRequest, ConfigError, Unauthorized
from .settings import Settings

TIMEOUT_S = 30.0


def credentials_path(settings: Settings) -> Path:
    return Path(settings.credentials_file).expanduser()


def stored_credentials(settings: Settings) -> dict[str, Any]:
    path = credentials_path(settings)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON; remove it and run `labci login` again") from exc
    return data if isinstance(data, dict) else {}


def store_credentials(settings: Settings, server: str, entry: dict[str, Any] | None) -> Path:
    """Keep (or, with None, forget) the token for `server`; the file is readable by its owner
    only, and replaced atomically."""
    path = credentials_path(settings)
    data = stored_credentials(settings)
    if entry is None:
        data.pop(server, None)
    else:
        data[server] = entry
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_suffix(".tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    staging.replace(path)
    return path


def server_url(settings: Settings, given: str | None) -> str:
    return (given or settings.public_url).rstrip("/")


def token_for(settings: Settings, server: str) -> str:
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    entry = stored_credentials(settings).get(server)
    if isinstance(entry, dict) and isinstance(entry.get("token"), str):
        return str(entry["token"])
    raise ConfigError(
        f"no API token for {server}: run `labci login --server {server}` or set LABCI_API_TOKEN"
    )


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One API call; a refusal becomes an error that says what the server said."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.request(method, url, json=body, headers=headers, timeout=TIMEOUT_S)
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": response.text[:300]}
    if response.status_code == 401:
        raise Unauthorized(f"{url}: {answer.get('error', 'unauthorized')}")
    if response.status_code >= 300:
        raise BadRequest(f"server answered {response.status_code}: {answer.get('error', answer)}")
    return answer if isinstance(answer, dict) else {"items": answer}


def api_call(
    settings: Settings,
    server: str | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    base = server_url(settings, server)
    return call(method, base + path, token=token_for(settings, base), body=body)
