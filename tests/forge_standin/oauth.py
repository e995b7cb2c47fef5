"""GitHub's OAuth web flow and who may do what, on the stand-in.

The web flow (``/login/oauth/*``, GitHub's web host, not its REST API: the OpenAPI checker
does not see these requests):

- ``GET /login/oauth/authorize`` stands for the person: nobody clicks, it redirects at once
  to ``redirect_uri`` with a one-time ``code`` (valid 10 minutes, as on GitHub) and the
  ``state``, for the account the test chose (``Standin.next_oauth_user = (login, id)``), or
  with ``error=access_denied`` once after ``Standin.deny_next_oauth()``.
- ``POST /login/oauth/access_token`` takes ``client_id``, ``client_secret``, ``code`` (and
  ``redirect_uri``, which must be the authorize request's if given) as form fields, as GitHub
  documents them, and answers JSON when asked with ``Accept: application/json``, else a form-
  encoded body. Its refusals are GitHub's: status 200 with ``error`` set
  (``incorrect_client_credentials``, ``bad_verification_code``, ``redirect_uri_mismatch``).
- ``GET /user`` with the token it minted answers that person (a token of the server's own is
  answered with the stand-in's bot).

Collaborator permissions: ``GET /repos/{owner}/{repo}/collaborators/{username}/permission``
answers from a table the test fills (``Standin.set_permission``): ``role_name`` as set,
``permission`` GitHub's legacy level (``maintain`` -> ``write``, ``triage`` -> ``read``), and
404 for anyone not in the table. Names compare case-insensitively, as on GitHub.

OAuth Apps, grants and the permission table survive ``Standin.reset()``, like repositories.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

WEB_FLOW_PREFIX = "/login/oauth/"
CODE_LIFETIME_S = 600.0
OAUTH_DOCS = "https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps"
TOKEN_ERRORS_DOC = f"{OAUTH_DOCS}/troubleshooting-oauth-app-access-token-request-errors"
AUTHORIZE_ERRORS_DOC = f"{OAUTH_DOCS}/troubleshooting-authorization-request-errors"
PERMISSION_DOC = (
    "https://docs.github.com/rest/collaborators/collaborators#get-repository-permissions-for-a-user"
)
ROLES = ("admin", "maintain", "write", "triage", "read", "none")
LEGACY_PERMISSION = {"maintain": "write", "triage": "read"}
TOKEN_ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "bad_verification_code": "The code passed is incorrect or expired.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this "
    "application.",
}


def is_web_flow(path: str) -> bool:
    """Whether ``path`` is on GitHub's web host (the OAuth flow), outside its REST API."""
    return path.startswith(WEB_FLOW_PREFIX)


@dataclass(frozen=True)
class Person:
    login: str
    id: int


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    person: Person
    expires_at_s: float


@dataclass
class OAuthState:
    """OAuth Apps, the codes and tokens they were given, and the permission table."""

    clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    next_user: tuple[str, int] | None = None
    deny_next: bool = False
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, Person] = field(default_factory=dict)
    authorize_params: list[dict[str, str]] = field(default_factory=list)
    # (owner, repo) lower-case -> {login lower-case: role}
    permissions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test controls -------------------------------------------------------------------

    def register(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self.clients[client_id] = client_secret

    def set_permission(self, owner: str, repo: str, login: str, role: str | None) -> None:
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES} (or None: not a GitHub user)")
        with self._lock:
            table = self.permissions.setdefault((owner.lower(), repo.lower()), {})
            if role is None:
                table.pop(login.lower(), None)
            else:
                table[login.lower()] = role

    def person_of(self, token: str | None) -> Person | None:
        with self._lock:
            return self.tokens.get(token or "")

    # -- GET /login/oauth/authorize --------------------------------------------------------

    def authorize(self, query: dict[str, Any]) -> Response:
        params = {k: v if isinstance(v, str) else v[-1] for k, v in query.items()}
        with self._lock:
            self.authorize_params.append(params)
            client_id = params.get("client_id", "")
            redirect_uri = params.get("redirect_uri", "")
            if client_id not in self.clients:
                return PlainTextResponse("Not Found: no OAuth App with this client_id", 404)
            if not redirect_uri.startswith(("http://", "https://")):
                return PlainTextResponse("redirect_uri is missing (the stand-in needs it)", 400)
            answer: dict[str, str]
            if self.deny_next:
                self.deny_next = False
                answer = {
                    "error": "access_denied",
                    "error_description": "The user has denied your application access.",
                    "error_uri": f"{AUTHORIZE_ERRORS_DOC}#access-denied",
                }
            elif self.next_user is None:
                return PlainTextResponse("nobody signs in: set Standin.next_oauth_user", 400)
            else:
                code = secrets.token_hex(10)
                person = Person(*self.next_user)
                self.codes[code] = _Code(
                    client_id,
                    redirect_uri,
                    params.get("scope", ""),
                    person,
                    time.time() + CODE_LIFETIME_S,
                )
                answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        return RedirectResponse(_with_query(redirect_uri, answer), status_code=302)

    # -- POST /login/oauth/access_token ----------------------------------------------------

    def access_token(self, form: dict[str, str], accept: str) -> Response:
        with self._lock:
            secret = self.clients.get(form.get("client_id", ""))
            code = self.codes.get(form.get("code", ""))
            given = form.get("client_secret", "")
            if secret is None or not secrets.compare_digest(given.encode(), secret.encode()):
                body = _token_error("incorrect_client_credentials")
            elif (
                code is None
                or code.client_id != form.get("client_id")
                or code.expires_at_s < time.time()
            ):
                body = _token_error("bad_verification_code")
            elif form.get("redirect_uri") not in (None, code.redirect_uri):
                body = _token_error("redirect_uri_mismatch")
            else:
                del self.codes[form["code"]]  # one-time
                token = "gho_" + secrets.token_hex(18)
                self.tokens[token] = code.person
                body = {"access_token": token, "token_type": "bearer", "scope": code.scope}
        if "application/json" in accept:
            return JSONResponse(body)
        return Response(
            urlencode(body), media_type="application/x-www-form-urlencoded; charset=utf-8"
        )

    # -- GET /repos/{owner}/{repo}/collaborators/{username}/permission --------------------

    def permission(self, owner: str, repo: str, login: str) -> str | None:
        with self._lock:
            return self.permissions.get((owner.lower(), repo.lower()), {}).get(login.lower())

    def id_of(self, login: str) -> int | None:
        """The id of a person who signed in through the stand-in (None: never seen)."""
        with self._lock:
            people = [*self.tokens.values(), *(c.person for c in self.codes.values())]
        return next((p.id for p in people if p.login.lower() == login.lower()), None)


def permission_body(role: str, user: dict[str, Any]) -> dict[str, Any]:
    """GitHub's ``repository-collaborator-permission`` for a collaborator with ``role``."""
    rank = ROLES[::-1].index(role)  # none 0, read 1, triage 2, write 3, maintain 4, admin 5
    permissions = {
        "pull": rank >= 1,
        "triage": rank >= 2,
        "push": rank >= 3,
        "maintain": rank >= 4,
        "admin": rank >= 5,
    }
    collaborator = user | {"permissions": permissions, "role_name": role}
    return {
        "permission": LEGACY_PERMISSION.get(role, role),
        "role_name": role,
        "user": collaborator,
    }


def authenticated_user(user: dict[str, Any], person: Person) -> dict[str, Any]:
    """GitHub's ``public-user`` answer to ``GET /user`` for ``person``."""
    return user | {
        "id": person.id,
        "type": "User",
        "user_view_type": "public",
        "name": None,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": "2011-01-25T18:44:36Z",
        "updated_at": "2024-01-02T03:04:05Z",
    }


def parse_form(raw: bytes) -> dict[str, str]:
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def _token_error(error: str) -> dict[str, str]:
    return {
        "error": error,
        "error_description": TOKEN_ERRORS[error],
        "error_uri": f"{TOKEN_ERRORS_DOC}#{error.replace('_', '-')}",
    }


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(extra)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
