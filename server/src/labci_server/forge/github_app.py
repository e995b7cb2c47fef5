"""Installation access tokens for labci as a GitHub App.

An App authenticates as itself with a short JWT signed by its private key (RS256), and trades
it for an installation access token (`POST /app/installations/{id}/access_tokens`), which
acts on the repositories of that one installation for an hour. `InstallationTokens` keeps one
token per installation and mints a new one `REFRESH_BEFORE_EXPIRY_S` before the old expires,
so a request never leaves with a token that dies on the way.

Concurrency: one instance per process, shared by concurrent tasks on one event loop. Callers
asking for the same installation at once wait for one request (a lock per installation) and
share its token; if it fails, each waiter tries in turn. Different installations do not wait
for each other.
Errors: `ForgeUnavailable` for anything worth retrying (5xx, resets, rate limits, an answer
without a token); `ForgeRejected` for refusals that a retry cannot fix (a JWT GitHub cannot
verify: the wrong key or app id; an installation that is gone or suspended).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gidgethub
import gidgethub.apps
import httpx
import jwt
from gidgethub.httpx import GitHubAPI

from ..errors import ConfigError, ForgeRejected, ForgeUnavailable
from .github import USER_AGENT, translate_error

REFRESH_BEFORE_EXPIRY_S = 5 * 60
ACCESS_TOKENS_URL = "/app/installations/{installation_id}/access_tokens"

_REFUSALS = {
    401: "GitHub could not verify the app's JWT (wrong private key or app id?)",
    403: "the installation is suspended or the app may not act on it",
    404: "GitHub knows no such installation of the app (uninstalled?)",
}


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at_s: float  # clock time from which a new token is minted instead


class InstallationTokens:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str,
        app_id: str,
        private_key: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`private_key` is the App's PEM text; a key that cannot sign is a `ConfigError`
        now, naming LABCI_GITHUB_PRIVATE_KEY, rather than a failed request later."""
        try:
            gidgethub.apps.get_jwt(app_id=app_id, private_key=private_key)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(
                f"LABCI_GITHUB_PRIVATE_KEY cannot sign a GitHub App JWT: {type(exc).__name__}; "
                "give the PEM text of the App's RSA private key"
            ) from exc
        self.app_id = app_id
        self._private_key = private_key
        self._api = GitHubAPI(client, USER_AGENT, base_url=api_url.rstrip("/"))
        self._clock = clock
        self._tokens: dict[int, _Token] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def token(self, installation_id: int) -> str:
        """A token for the installation, minted only when the cached one is near expiry."""
        cached = self._fresh(installation_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(installation_id)  # minted while we waited
            if cached is not None:
                return cached
            minted = await self._mint(installation_id)
            self._tokens[installation_id] = minted
            return minted.value

    def forget(self, installation_id: int, token: str) -> None:
        """Drop `token` (GitHub refused it before its time: revoked), so the next call mints
        a new one; a newer token minted meanwhile is kept."""
        cached = self._tokens.get(installation_id)
        if cached is not None and cached.value == token:
            del self._tokens[installation_id]

    def _fresh(self, installation_id: int) -> str | None:
        cached = self._tokens.get(installation_id)
        if cached is None or self._clock() >= cached.refresh_at_s:
            return None
        return cached.value

    async def _mint(self, installation_id: int) -> _Token:
        where = f"GitHub App {self.app_id}, installation {installation_id}"
        try:
            answer = await gidgethub.apps.get_installation_access_token(
                self._api,
                installation_id=str(installation_id),
                app_id=self.app_id,
                private_key=self._private_key,
            )
        except gidgethub.HTTPException as exc:
            raise _refusal(exc, where) from exc
        except httpx.TransportError as exc:
            raise translate_error(exc, f"{where}: POST {ACCESS_TOKENS_URL}") from exc
        return _token(answer, where)


def _refusal(exc: gidgethub.HTTPException, where: str) -> Exception:
    translated = translate_error(exc, f"{where}: POST {ACCESS_TOKENS_URL}")
    status = int(exc.status_code)
    if not isinstance(translated, ForgeRejected) or status not in _REFUSALS:
        return translated
    return ForgeRejected(
        f"{where}: no access token, {_REFUSALS[status]}; GitHub answered {status}: {exc}",
        status=status,
    )


def _token(answer: Any, where: str) -> _Token:
    """The token and when to replace it, from GitHub's `installation-token` answer."""
    try:
        value = answer["token"]
        expires_at = datetime.fromisoformat(answer["expires_at"]).timestamp()
    except (TypeError, KeyError, ValueError) as exc:
        raise ForgeUnavailable(f"{where}: GitHub answered without a usable token") from exc
    if not isinstance(value, str) or not value:
        raise ForgeUnavailable(f"{where}: GitHub answered without a usable token")
    return _Token(value, expires_at - REFRESH_BEFORE_EXPIRY_S)
