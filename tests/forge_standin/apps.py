"""GitHub Apps on the stand-in: the App's JWT, installation access tokens, and who may act.

An App is registered with its id and public key (``Standin.register_app``) and installed on
some repositories (``Standin.install_app``). ``POST /app/installations/{id}/access_tokens``
takes a JWT signed RS256 by the App's private key and answers GitHub's ``installation-token``
(``apps/create-installation-access-token`` in ``@octokit/openapi``); repository endpoints then
take that token (``token`` or ``Bearer`` scheme) until it expires, for the repositories of its
installation only. The registry is thread-safe: the stand-in answers from uvicorn's thread
while tests read from theirs.

What GitHub leaves unclear, and what the stand-in chose:
- The JWT checks are GitHub's documented ones (RS256; ``iss`` the App id; ``iat`` not in the
  future; ``exp`` in the future, at most 10 minutes ahead), with 30 s of leeway for clocks.
  Each refusal is a 401 with the message GitHub is reported to give.
- A request body naming ``repositories``/``permissions`` to narrow the token is accepted and
  not modelled: the token covers the whole installation.
- An installation token used on a repository outside its installation gets 404, as GitHub
  hides repositories a credential cannot see; an expired one gets 401 "Bad credentials".
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.responses import JSONResponse

DOCS = "https://docs.github.com/rest"
ACCESS_TOKENS_DOC = f"{DOCS}/apps/apps#create-an-installation-access-token-for-an-app"
REPO_INSTALLATION_DOC = f"{DOCS}/apps/apps#get-a-repository-installation-for-the-authenticated-app"
UNDECODABLE = "A JSON web token could not be decoded"
JWT_MAX_LIFETIME_S = 10 * 60
LEEWAY_S = 30
TOKEN_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "write",
}
APP_EVENTS = ["check_run", "check_suite", "pull_request", "push"]
APP_CREATED_AT = "2024-01-02T03:04:05Z"

UserFactory = Callable[[str], dict[str, Any]]  # login -> GitHub's simple-user object


@dataclass(frozen=True)
class App:
    id: int
    public_key: bytes  # PEM
    slug: str
    owner: str  # the account that registered it

    @property
    def external_url(self) -> str:
        """The App's homepage: GitHub's ``details_url`` of a check run that gives none."""
        return f"https://{self.slug}.example.com"


@dataclass(frozen=True)
class Grant:
    """What one installation access token may do, and until when."""

    installation_id: int
    app_id: int
    expires_at_s: float


@dataclass
class _Installation:
    app_id: int
    repositories: frozenset[str] | None  # "owner/repo", lower-case; None: all of them


@dataclass
class AppRegistry:
    """Registered Apps, their installations and the tokens minted for them."""

    token_lifetime_s: float = 3600.0  # GitHub's installation tokens last an hour
    _apps: dict[int, App] = field(default_factory=dict)
    _installations: dict[int, _Installation] = field(default_factory=dict)
    _grants: dict[str, Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, app_id: int, public_key: str | bytes, slug: str, owner: str) -> None:
        key = public_key.encode() if isinstance(public_key, str) else public_key
        with self._lock:
            self._apps[app_id] = App(app_id, key, slug, owner)

    def install(
        self, app_id: int, installation_id: int, repositories: Collection[str] | None
    ) -> None:
        with self._lock:
            if app_id not in self._apps:
                raise LookupError(f"no GitHub App {app_id}: register it first")
            names = None if repositories is None else frozenset(r.lower() for r in repositories)
            self._installations[installation_id] = _Installation(app_id, names)

    def app(self, app_id: int) -> App | None:
        with self._lock:
            return self._apps.get(app_id)

    def expire_tokens(self) -> None:
        """Make every token minted so far expired (GitHub then answers 401 to it)."""
        with self._lock:
            for token, grant in self._grants.items():
                self._grants[token] = Grant(grant.installation_id, grant.app_id, 0.0)

    def grant(self, token: str) -> Grant | None:
        """The grant of an installation token; None for any other credential."""
        with self._lock:
            return self._grants.get(token)

    def refusal(self, grant: Grant, path: str) -> JSONResponse | None:
        """GitHub's answer when ``grant`` may not make a request to ``path``, else None."""
        if time.time() >= grant.expires_at_s:
            return _error(401, "Bad credentials", DOCS)
        parts = path.split("/")
        if len(parts) < 4 or parts[1] != "repos":
            return None
        with self._lock:
            installation = self._installations.get(grant.installation_id)
        if installation is None:
            return _error(401, "Bad credentials", DOCS)
        covered = installation.repositories
        if covered is not None and f"{parts[2]}/{parts[3]}".lower() not in covered:
            return _error(404, "Not Found", DOCS)
        return None

    def mint(self, authorization: str, installation_id: str) -> JSONResponse:
        """The answer to ``POST /app/installations/{installation_id}/access_tokens``."""
        app = self._authenticate(authorization)
        if isinstance(app, JSONResponse):
            return app
        with self._lock:
            installation = (
                self._installations.get(int(installation_id)) if installation_id.isdigit() else None
            )
            if installation is None or installation.app_id != app.id:
                return _error(404, "Not Found", ACCESS_TOKENS_DOC)
            expires_at = int(time.time() + self.token_lifetime_s)
            token = "ghs_" + secrets.token_urlsafe(27)[:36]
            self._grants[token] = Grant(int(installation_id), app.id, expires_at)
        body = {
            "token": token,
            "expires_at": datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "permissions": dict(TOKEN_PERMISSIONS),
            "repository_selection": "all" if installation.repositories is None else "selected",
        }
        return JSONResponse(body, 201)

    def installation_of(
        self, authorization: str, full_name: str, base: str, user: UserFactory
    ) -> JSONResponse:
        """The answer to ``GET /repos/{owner}/{repo}/installation``: the installation of the
        App (authenticated by its JWT) that covers ``full_name``, else 404."""
        app = self._authenticate(authorization, REPO_INSTALLATION_DOC)
        if isinstance(app, JSONResponse):
            return app
        with self._lock:
            found = [
                (iid, inst)
                for iid, inst in sorted(self._installations.items())
                if inst.app_id == app.id
                and (inst.repositories is None or full_name.lower() in inst.repositories)
            ]
        if not found:
            return _error(404, "Not Found", REPO_INSTALLATION_DOC)
        installation_id, installation = found[0]
        account = user(full_name.split("/", 1)[0]) | {"type": "User"}
        body = {
            "id": installation_id,
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": account["id"],
            "target_type": "User",
            "single_file_name": None,
            "repository_selection": "all" if installation.repositories is None else "selected",
            "access_tokens_url": f"{base}/app/installations/{installation_id}/access_tokens",
            "html_url": f"{base}/settings/installations/{installation_id}",
            "repositories_url": f"{base}/installation/repositories",
            "events": list(APP_EVENTS),
            "account": account,
            "permissions": dict(TOKEN_PERMISSIONS),
            "created_at": APP_CREATED_AT,
            "updated_at": APP_CREATED_AT,
            "suspended_by": None,
            "suspended_at": None,
        }
        return JSONResponse(body)

    def _authenticate(self, authorization: str, doc: str = ACCESS_TOKENS_DOC) -> App | JSONResponse:
        """The App whose valid JWT ``authorization`` carries, or GitHub's 401."""
        scheme, _, value = authorization.strip().partition(" ")
        token = value.strip()
        if not token:
            return _error(401, "Requires authentication", doc)
        if scheme.lower() != "bearer":
            return _error(401, UNDECODABLE, doc)
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return _error(401, UNDECODABLE, doc)
        issuer = claims.get("iss")
        app = self.app(int(issuer)) if str(issuer).isdigit() else None
        if app is None:
            return _error(401, "'Issuer' claim ('iss') must name a GitHub App", doc)
        problem = _claims_problem(token, header, claims, app)
        return app if problem is None else _error(401, problem, doc)


def _claims_problem(
    token: str, header: dict[str, Any], claims: dict[str, Any], app: App
) -> str | None:
    """GitHub's message for a JWT it refuses, else None."""
    if header.get("alg") != "RS256":
        return UNDECODABLE
    try:
        jwt.decode(
            token,
            app.public_key,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return UNDECODABLE
    now = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or iat > now + LEEWAY_S:
        return (
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued"
        )
    if not isinstance(exp, int) or exp <= now - LEEWAY_S:
        return (
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires"
        )
    if exp > now + JWT_MAX_LIFETIME_S + LEEWAY_S:
        return "'Expiration time' claim ('exp') is too far in the future"
    return None


def app_object(app: App | None, app_id: int, base: str, user: UserFactory) -> dict[str, Any]:
    """GitHub's ``integration`` object for an App (a placeholder one if not registered)."""
    slug = app.slug if app is not None else f"app-{app_id}"
    owner = app.owner if app is not None else "octo-org"
    return {
        "id": app_id,
        "slug": slug,
        "node_id": base64.b64encode(f"03:Integration{app_id}".encode()).decode(),
        "client_id": f"Iv1.{zlib.crc32(slug.encode()):016x}",
        "owner": user(owner),
        "name": slug,
        "description": None,
        "external_url": app.external_url if app is not None else f"https://{slug}.example.com",
        "html_url": f"{base}/apps/{slug}",
        "created_at": APP_CREATED_AT,
        "updated_at": APP_CREATED_AT,
        "permissions": dict(TOKEN_PERMISSIONS),
        "events": list(APP_EVENTS),
    }


def _error(status: int, message: str, doc: str) -> JSONResponse:
    return JSONResponse(
        {"message": message, "documentation_url": doc, "status": str(status)}, status
    )
