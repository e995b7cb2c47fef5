"""A GitHub stand-in for tests: the few REST endpoints labci calls, served from real git repos.

Every request is recorded and checked against ``@octokit/openapi`` (see ``openapi.py``).
Repositories are real bare repositories at ``repos_root/<owner>/<repo>.git``, read with the
``git`` CLI (diffs, commits and comparisons are shaped in ``compare.py``). Statuses, pull
requests (``Standin.open_pull_request``, ``Standin.merge_pull_request``), their comments
(``comments.py``) and comments on commits (``commit_comments.py``) are kept in memory, and so are check runs (``checks.py``), which only a GitHub App may write: Apps, their
JWTs and installation tokens are in ``apps.py``. Faults (error statuses, dropped connections,
a crash after a status, a comment or a check run was stored) are injected on demand.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import re
import subprocess
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import apps as github_apps
from . import checks, commit_comments, compare, pulls
from . import comments as issue_comments
from . import oauth as github_oauth
from . import repository as full_repository
from .compare import PullRequest, Site
from .openapi import OpenAPIChecker

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Fault = int | Literal["reset"]
# What a response stored, for crash_after_commit.
Committed = Literal["status", "comment", "check_run"]

DOCS = "https://docs.github.com/rest"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATUS_STATES = ("error", "failure", "pending", "success")
MAX_DESCRIPTION = 140
MAX_INLINE_CONTENT = 1024 * 1024  # GitHub returns encoding "none" above 1 MB
_SHA = re.compile(r"[0-9a-f]{40}\Z")
_ISSUE_COMMENTS = re.compile(r"/repos/([^/]+)/([^/]+)/issues/([^/]+)/comments")
_COMMIT_COMMENTS = re.compile(r"/repos/([^/]+)/([^/]+)/commits/([^/]+)/comments")
_REPO_INSTALLATION = re.compile(r"/repos/([^/]+)/([^/]+)/installation")
_COLLABORATOR_PERMISSION = re.compile(r"/repos/([^/]+)/([^/]+)/collaborators/([^/]+)/permission")
COMMENTS_DOC = f"{DOCS}/issues/comments"
COMMIT_COMMENTS_DOC = f"{DOCS}/commits/comments"
CHECKS_DOC = f"{DOCS}/checks/runs"

FAULT_MESSAGES = {
    401: "Bad credentials",
    403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again.",
    404: "Not Found",
    422: "Validation Failed",
    429: "API rate limit exceeded",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "We couldn't respond to your request in time. Sorry about that.",
}


class ConnectionDroppedError(ConnectionError):
    """Raised to the client when the app runs in-process (httpx.ASGITransport) and drops."""


@dataclass
class Recorded:
    """One request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str | list[str]]
    json: Any | None
    headers: dict[str, str]  # lower-case names
    received_at: float  # time.time() when the request reached the stand-in
    body: bytes = b""
    status: int | None = None  # None: the connection was dropped without a response
    fault: str | None = None  # "fail_next", "fail_ratio", "crash_after_commit" or None
    in_flight: int = 0  # mutations in flight with the same token, this one included

    @property
    def token(self) -> str | None:
        return _token(self.headers.get("authorization", ""))

    @property
    def user_agent(self) -> str | None:
        return self.headers.get("user-agent")


def _token(auth: str) -> str | None:
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, doc: str = DOCS, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"message": message, "documentation_url": doc, "status": str(status), **extra}, status
    )


def _not_found(doc: str = DOCS) -> JSONResponse:
    return _error(404, "Not Found", doc)


class GitError(Exception):
    pass


def _git(repo: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise GitError(proc.stderr.decode(errors="replace").strip())
    return proc.stdout


def _resolve(repo: Path, ref: str, kind: str) -> str | None:
    """Object name of ``ref`` peeled to ``kind`` (commit/tree), as GitHub resolves refs."""
    if not ref or ref.startswith("-") or "\0" in ref:
        return None
    for candidate in (ref, f"refs/{ref}", f"refs/heads/{ref}", f"refs/tags/{ref}"):
        try:
            out = _git(repo, "rev-parse", "--verify", "--quiet", f"{candidate}^{{{kind}}}")
        except GitError:
            continue
        return out.decode().strip()
    return None


def _ls_tree(repo: Path, treeish: str, *, recursive: bool, paths: Sequence[str] = ()) -> list:
    args = ["ls-tree", "-z", "-l"]
    if recursive:
        args += ["-r", "-t"]
    out = _git(repo, *args, treeish, "--", *paths)
    entries = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, name = rec.partition(b"\t")
        mode, kind, sha, size = meta.decode().split()
        entries.append((mode, kind, sha, None if size == "-" else int(size), name.decode()))
    return entries


@dataclass
class _Faults:
    fail_next: list[tuple[Fault, dict[str, str], Any, str | None]] = field(default_factory=list)
    ratio: float = 0.0
    rng: random.Random | None = None
    ratio_statuses: tuple[Fault, ...] = (500, 502)
    ratio_method: str | None = None
    crash_after_commit: int = 0
    crash_mode: Fault = "reset"
    crash_on: frozenset[Committed] = frozenset({"status"})


class Standin:
    """State and fault controls of one stand-in; ``.app`` is the ASGI application."""

    def __init__(
        self,
        repos_root: Path,
        checker: OpenAPIChecker,
        *,
        tokens: Collection[str] | None = None,
        login: str = "labci-bot",
        max_statuses_per_context: int = 1000,
    ) -> None:
        self.repos_root = Path(repos_root)
        self.checker = checker
        self.tokens = None if tokens is None else frozenset(tokens)
        self.login = login
        self.max_statuses_per_context = max_statuses_per_context
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        # (owner, repo, sha) -> statuses in creation order (oldest first), as returned on POST
        self.statuses: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        # (owner, repo, number), owner and repo lower-case -> an open pull request
        self.pull_requests: dict[tuple[str, str, int], PullRequest] = {}
        # (owner, repo, number), lower-case -> how that pull request was merged
        self.merges: dict[tuple[str, str, int], pulls.Merge] = {}
        self._comments = issue_comments.CommentStore()
        self._commit_comments = commit_comments.CommitCommentStore()
        self.apps = github_apps.AppRegistry()
        self._check_runs = checks.CheckRunStore()
        self.latency = 0.0  # seconds each request takes (after recording), for overlap tests
        self._lock = threading.Lock()
        self._faults = _Faults()
        self._next_status_id = 1_000_000_001
        self._in_flight: dict[str | None, int] = {}
        self._rate_used = 0
        # (owner, repo) lower-case -> "private" or "internal"; the others are public
        self._visibility: dict[tuple[str, str], str] = {}
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Response]]]] = [
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/git/trees/(.+)"), self._get_tree),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/contents(?:/(.*))?"), self._get_contents),
            ("POST", re.compile(r"/repos/([^/]+)/([^/]+)/statuses/(.+)"), self._post_status),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/(.+)/statuses"), self._list),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/(.+)/status"), self._combined),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/(.+)/check-runs"), self._runs),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/([^/]+)/pulls"), self._pulls_of),
            ("GET", _COMMIT_COMMENTS, self._list_commit_comments),
            ("POST", _COMMIT_COMMENTS, self._create_commit_comment),
            ("PATCH", re.compile(r"/repos/([^/]+)/([^/]+)/comments/([^/]+)"), self._edit_on_commit),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/commits/(.+)"), self._commit),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/compare/(.+)"), self._compare),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/([^/]+)/files"), self._pull_files),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)/pulls/([^/]+)"), self._get_pull),
            ("GET", _ISSUE_COMMENTS, self._list_comments),
            ("POST", _ISSUE_COMMENTS, self._create_comment),
            ("PATCH", re.compile(r"/repos/([^/]+)/([^/]+)/issues/comments/([^/]+)"), self._edit),
            ("POST", re.compile(r"/repos/([^/]+)/([^/]+)/check-runs"), self._create_run),
            ("PATCH", re.compile(r"/repos/([^/]+)/([^/]+)/check-runs/([^/]+)"), self._update_run),
            ("POST", re.compile(r"/app/installations/([^/]+)/access_tokens"), self._access_token),
            ("GET", re.compile(r"/repos/([^/]+)/([^/]+)"), self._get_repository),
            ("GET", _REPO_INSTALLATION, self._repo_installation),
            ("GET", _COLLABORATOR_PERMISSION, self._collaborator_permission),
            ("GET", re.compile(r"/user"), self._authenticated_user),
            ("GET", re.compile(r"/login/oauth/authorize"), self._oauth_authorize),
            ("POST", re.compile(r"/login/oauth/access_token"), self._oauth_access_token),
        ]
        # OAuth Apps, the people who sign in through them, and collaborators' permissions.
        self.oauth = github_oauth.OAuthState()

    # -- pull requests ---------------------------------------------------------------------

    def open_pull_request(
        self, owner: str, repo: str, number: int, *, head_ref: str, base_ref: str
    ) -> None:
        """Pull request ``number`` of ``owner/repo`` proposes branch ``head_ref`` for ``base_ref``.

        Both branches live in that repository (fork pull requests are not modelled). They are
        resolved on every request, as on GitHub, so a push to either changes what is listed.
        Pull requests survive ``reset()``, like the repositories. Send the matching webhook
        with ``webhooks.pull_request_payload``.
        """
        with self._lock:
            self.pull_requests[(owner.lower(), repo.lower(), number)] = PullRequest(
                number, head_ref, base_ref
            )

    def merge_pull_request(self, owner: str, repo: str, number: int, merge_commit_sha: str) -> None:
        """Open pull request ``number`` was merged by ``merge_commit_sha`` (a commit already on
        its base branch: the test makes it). From now on it reads closed and merged, and
        ``GET /repos/{owner}/{repo}/commits/{sha}/pulls`` lists it for the commits it brought
        in: ``merge_commit_sha`` and, for a merge commit, what its second parent added."""
        key = (owner.lower(), repo.lower(), number)
        with self._lock:
            if key not in self.pull_requests:
                raise LookupError(f"no pull request {owner}/{repo}#{number}: open it first")
            self.merges[key] = pulls.Merge(merge_commit_sha, _now())

    # -- repositories' visibility ----------------------------------------------------------

    def set_visibility(self, owner: str, repo: str, visibility: str) -> None:
        """Make ``owner/repo`` public, private or internal (as ``GET /repos/{owner}/{repo}``
        then says); repositories are public until set. Survives ``reset()``."""
        if visibility not in full_repository.VISIBILITIES:
            raise ValueError(f"visibility must be one of {full_repository.VISIBILITIES}")
        with self._lock:
            self._visibility[(owner.lower(), repo.lower())] = visibility

    # -- signing in with GitHub, and collaborators' permissions (oauth.py) -----------------

    def register_oauth_app(self, client_id: str, client_secret: str) -> None:
        """An OAuth App whose users sign in through ``/login/oauth/*``. Survives ``reset()``."""
        self.oauth.register(client_id, client_secret)

    @property
    def next_oauth_user(self) -> tuple[str, int] | None:
        """(login, numeric id) of whoever authorizes the next sign-ins; None: nobody."""
        return self.oauth.next_user

    @next_oauth_user.setter
    def next_oauth_user(self, person: tuple[str, int] | None) -> None:
        self.oauth.next_user = person

    def deny_next_oauth(self) -> None:
        """The next authorization is refused by the person (``error=access_denied``)."""
        self.oauth.deny_next = True

    def set_permission(self, owner: str, repo: str, login: str, role: str | None) -> None:
        """``login``'s role on ``owner/repo`` (admin, maintain, write, triage, read or none),
        as the collaborator-permission endpoint then answers; None: 404, as for a stranger."""
        self.oauth.set_permission(owner, repo, login, role)

    def permission_requests(self, owner: str, repo: str, login: str) -> list[Recorded]:
        """The collaborator-permission requests made so far for ``login`` on ``owner/repo``."""
        path = f"/repos/{owner}/{repo}/collaborators/{login}/permission".lower()
        return [r for r in self.requests if r.method == "GET" and r.path.lower() == path]

    # -- pull-request comments -------------------------------------------------------------

    def comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        """Pull request ``number``'s comments, oldest first: id, number, body, login (the
        author), created_at and updated_at. Copies: changing them changes nothing here."""
        return [c.as_dict() for c in self._comments.on_pull_request(owner, repo, number)]

    def add_comment(
        self, owner: str, repo: str, number: int, body: str, *, login: str = "octocat"
    ) -> int:
        """Comment on an open pull request as ``login`` (someone else than labci, by default)
        without a request; returns the new comment's id. Comments are cleared by ``reset()``."""
        with self._lock:
            if (owner.lower(), repo.lower(), number) not in self.pull_requests:
                raise LookupError(f"no pull request {owner}/{repo}#{number}: open it first")
        return self._comments.create(owner, repo, number, body, login).id

    # -- commit comments -------------------------------------------------------------------

    def commit_comments(self, owner: str, repo: str, sha: str) -> list[dict[str, Any]]:
        """The comments on commit ``sha``, oldest first: id, commit_id, body, login,
        created_at and updated_at. Copies. Cleared by ``reset()``."""
        return [c.as_dict() for c in self._commit_comments.on_commit(owner, repo, sha)]

    # -- GitHub Apps and check runs --------------------------------------------------------

    def register_app(
        self, app_id: int, public_key: str | bytes, *, slug: str = "labci", owner: str = "octo"
    ) -> None:
        """Register a GitHub App by its id and PEM public key. Apps and their installations
        survive ``reset()``, like the repositories; ``apps.token_lifetime_s`` sets how long
        the installation tokens minted from now on last (GitHub: an hour)."""
        self.apps.register(app_id, public_key, slug, owner)

    def install_app(
        self, app_id: int, installation_id: int, repositories: Collection[str] | None = None
    ) -> None:
        """Install the App on ``repositories`` ("owner/repo"; None: every repository)."""
        self.apps.install(app_id, installation_id, repositories)

    def expire_installation_tokens(self) -> None:
        """Every installation token minted so far expires now (GitHub then answers 401)."""
        self.apps.expire_tokens()

    def check_runs(self, owner: str, repo: str, sha: str) -> list[dict[str, Any]]:
        """The check runs on commit ``sha``, oldest first: id, name, app_id, external_id,
        status, conclusion, title, summary, text, details_url (None: not given), started_at
        and completed_at. Copies: changing them changes nothing here. Cleared by ``reset()``."""
        return [r.as_dict() for r in self._check_runs.on_commit(owner, repo, sha)]

    def add_check_run(
        self,
        owner: str,
        repo: str,
        sha: str,
        name: str,
        *,
        app_id: int,
        external_id: str = "",
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> int:
        """Add a check run as App ``app_id`` (another App than labci, typically) without a
        request; returns its id."""
        values = {"head_sha": sha, "name": name, "app_id": app_id, "external_id": external_id}
        values |= {"status": status, "conclusion": conclusion, "title": name, "summary": ""}
        return self._check_runs.create(owner, repo, values).id

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: Fault = 502,
        headers: Mapping[str, str] | None = None,
        *,
        body: Any = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests (only ``method`` ones if given) with ``status``.

        ``status="reset"`` drops the connection instead. ``body`` defaults to GitHub's error
        JSON for that status.
        """
        with self._lock:
            self._faults.fail_next.extend(
                [(status, dict(headers or {}), body, method and method.upper())] * n
            )

    def fail_ratio(
        self,
        ratio: float,
        seed: int,
        statuses: Sequence[Fault] = (500, 502),
        *,
        method: str | None = None,
    ) -> None:
        """Fail each request (only ``method`` ones if given) with probability ``ratio``."""
        with self._lock:
            self._faults.ratio = ratio
            self._faults.rng = random.Random(seed)
            self._faults.ratio_statuses = tuple(statuses)
            self._faults.ratio_method = method and method.upper()

    def crash_after_commit_next(
        self, n: int, mode: Fault = "reset", *, on: Collection[Committed] = ("status",)
    ) -> None:
        """The next ``n`` successful writes of the kinds ``on`` names are stored, then the
        reply is lost: status POSTs by default, comment creates and edits with ``"comment"``,
        check run creates and updates with ``"check_run"``.

        ``mode="reset"`` drops the connection; an int answers with that status instead.
        """
        with self._lock:
            self._faults.crash_after_commit += n
            self._faults.crash_mode = mode
            self._faults.crash_on = frozenset(on)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = _Faults()

    def reset(self) -> None:
        """Forget faults, recorded requests, violations, statuses, comments and check runs.

        Pull requests and GitHub Apps (their installations and tokens) stay, like the
        repositories: they are a test's setup, while the rest is what labci wrote.
        """
        with self._lock:
            self._faults = _Faults()
            self.requests.clear()
            self.violations.clear()
            self.statuses.clear()
            self.latency = 0.0
        self._comments.clear()
        self._commit_comments.clear()
        self._check_runs.clear()

    def _pick_fault(self, method: str) -> tuple[Fault, dict[str, str], Any, str] | None:
        with self._lock:
            f = self._faults
            for i, (status, headers, body, only) in enumerate(f.fail_next):
                if only is None or only == method:
                    del f.fail_next[i]
                    return status, headers, body, "fail_next"
            if f.rng is not None and (f.ratio_method in (None, method)):
                if f.rng.random() < f.ratio:
                    return f.rng.choice(f.ratio_statuses), {}, None, "fail_ratio"
        return None

    def _take_crash(self, committed: Committed) -> Fault | None:
        with self._lock:
            if self._faults.crash_after_commit > 0 and committed in self._faults.crash_on:
                self._faults.crash_after_commit -= 1
                return self._faults.crash_mode
        return None

    # -- queries for tests -----------------------------------------------------------------

    def mutations(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in MUTATING]

    def status_posts(self, *, status: int | None = 201) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if r.method == "POST" and "/statuses/" in r.path and r.status == status
        ]

    # -- ASGI ------------------------------------------------------------------------------

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        received_at = time.time()
        request = Request(scope, receive)
        raw = await request.body()
        method = request.method.upper()
        path = request.url.path
        query: dict[str, str | list[str]] = {}
        for k, v in parse_qsl(request.url.query, keep_blank_values=True):
            prev = query.get(k)
            query[k] = v if prev is None else [*([prev] if isinstance(prev, str) else prev), v]
        body: Any = None
        bad_json = False
        web_flow = github_oauth.is_web_flow(path)  # GitHub's web host: forms, not REST
        if raw and not web_flow:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rec = Recorded(method, path, query, body, headers, received_at, raw)
        token = rec.token
        with self._lock:
            self.requests.append(rec)
            if method in MUTATING:
                self._in_flight[token] = self._in_flight.get(token, 0) + 1
                rec.in_flight = self._in_flight[token]
        try:
            problems = (
                [f"{method} {path}: request body is not JSON"]
                if bad_json
                else []
                if web_flow
                else self.checker.check(method, path, query, body)
            )
            if problems:
                with self._lock:
                    self.violations.extend(problems)
            if self.latency:
                await asyncio.sleep(self.latency)
            await self._respond(rec, request, send, bad_json)
        finally:
            if method in MUTATING:
                with self._lock:
                    self._in_flight[token] -= 1

    async def _respond(self, rec: Recorded, request: Request, send: Send, bad_json: bool) -> None:
        fault = self._pick_fault(rec.method)
        if fault is not None:
            status, headers, body, kind = fault
            rec.fault = kind
            if status == "reset":
                await self._drop(send)
                return
            payload = body if body is not None else self._fault_body(int(status))
            response = JSONResponse(payload, int(status), headers=self._headers(headers))
            return await self._send(rec, response, request, send)

        refused = self._authorize(rec)
        if refused is not None:
            return await self._send(rec, refused, request, send)
        if bad_json:
            return await self._send(rec, _error(400, "Problems parsing JSON"), request, send)

        for method, pattern, handler in self._routes:
            m = pattern.fullmatch(rec.path)
            if m and method == rec.method:
                response = await handler(request, rec, *m.groups())
                break
        else:
            with self._lock:
                self.violations.append(f"unhandled endpoint: {rec.method} {rec.path}")
            response = _not_found()

        committed = getattr(response, "committed", None)
        if committed:
            crash = self._take_crash(committed)
            if crash is not None:
                rec.fault = "crash_after_commit"
                if crash == "reset":
                    await self._drop(send)
                    return
                response = JSONResponse(
                    self._fault_body(int(crash)), int(crash), headers=self._headers({})
                )
        await self._send(rec, response, request, send)

    def _authorize(self, rec: Recorded) -> Response | None:
        """GitHub's refusal of the request's credentials, if any. Installation tokens act on
        their installation's repositories until they expire; the App's own endpoints
        (``/app/...``, ``/repos/{owner}/{repo}/installation``) check their JWT in their
        handler."""
        if rec.path.startswith("/app/") or _REPO_INSTALLATION.fullmatch(rec.path):
            return None
        if github_oauth.is_web_flow(rec.path):  # the OAuth flow checks its own credentials
            return None
        token = rec.token
        if token is None:
            return _error(401, "Requires authentication")
        if self.oauth.person_of(token) is not None:  # a person's token from the OAuth flow
            return None
        grant = self.apps.grant(token)
        if grant is not None:
            return self.apps.refusal(grant, rec.path)
        if self.tokens is not None and token not in self.tokens:
            return _error(401, "Bad credentials")
        return None

    def _fault_body(self, status: int) -> dict[str, Any]:
        return {
            "message": FAULT_MESSAGES.get(status, "Server Error"),
            "documentation_url": DOCS,
            "status": str(status),
        }

    def _headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        with self._lock:
            self._rate_used += 1
            used = self._rate_used
        reset = int(time.time()) // 3600 * 3600 + 3600
        headers = {
            "x-github-request-id": uuid.uuid4().hex[:20].upper(),
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(max(0, 5000 - used)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": "2022-11-28",
        }
        headers.update({k.lower(): v for k, v in extra.items()})
        return headers

    async def _send(self, rec: Recorded, response: Response, request: Request, send: Send) -> None:
        for k, v in self._headers({}).items():
            response.headers.setdefault(k, v)
        rec.status = response.status_code
        await response(request.scope, request.receive, send)

    async def _drop(self, send: Send) -> None:
        """Close the connection without a response (uvicorn), or raise (in-process)."""
        cycle = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise ConnectionDroppedError("forge stand-in dropped the connection")
        transport.close()
        cycle.disconnected = True  # so uvicorn does not try to answer 500 on a closed socket

    # -- repositories ----------------------------------------------------------------------

    def _repo(self, owner: str, repo: str) -> tuple[str, str, Path] | None:
        """(owner, repo, git dir) with GitHub's case-insensitive name lookup."""
        if "/" in owner or "/" in repo or owner.startswith(".") or repo.startswith("."):
            return None
        exact = self.repos_root / owner / f"{repo}.git"
        if exact.is_dir():
            return owner, repo, exact
        if not self.repos_root.is_dir():
            return None
        for o in self.repos_root.iterdir():
            if o.name.lower() != owner.lower() or not o.is_dir():
                continue
            for r in o.iterdir():
                if r.name.lower() == f"{repo}.git".lower() and r.is_dir():
                    return o.name, r.name[: -len(".git")], r
        return None

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # -- git/trees -------------------------------------------------------------------------

    async def _get_tree(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        doc = f"{DOCS}/git/trees#get-a-tree"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        tree = await asyncio.to_thread(_resolve, gitdir, ref, "tree")
        if tree is None:
            return _error(404, "Not Found", doc)
        recursive = "recursive" in rec.query
        entries = await asyncio.to_thread(_ls_tree, gitdir, tree, recursive=recursive)
        api = f"{self._base(request)}/repos/{owner}/{repo}/git"
        items = []
        for mode, kind, sha, size, name in entries:
            item: dict[str, Any] = {"path": name, "mode": mode, "type": kind, "sha": sha}
            if kind == "blob":
                item["size"] = size
                item["url"] = f"{api}/blobs/{sha}"
            elif kind == "tree":
                item["url"] = f"{api}/trees/{sha}"
            items.append(item)
        return JSONResponse(
            {"sha": tree, "url": f"{api}/trees/{tree}", "tree": items, "truncated": False}
        )

    # -- contents --------------------------------------------------------------------------

    async def _get_contents(
        self, request: Request, rec: Recorded, owner: str, repo: str, path: str | None
    ):
        doc = f"{DOCS}/repos/contents#get-repository-content"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        ref = rec.query.get("ref")
        if isinstance(ref, list):
            ref = ref[-1]
        if not ref:
            try:
                head = await asyncio.to_thread(_git, gitdir, "symbolic-ref", "--short", "HEAD")
            except GitError:
                return _not_found(doc)
            ref = head.decode().strip()
        commit = await asyncio.to_thread(_resolve, gitdir, ref, "commit")
        if commit is None:
            return _error(404, f"No commit found for the ref {ref}", doc)
        path = (path or "").strip("/")
        base = self._base(request)
        if path:
            entries = await asyncio.to_thread(
                _ls_tree, gitdir, commit, recursive=False, paths=[path]
            )
            entries = [e for e in entries if e[4] == path]
            if not entries:
                return _not_found(doc)
            mode, kind, sha, size, _name = entries[0]
        else:
            mode, kind, sha, size = "040000", "tree", "", None
        if kind == "tree":
            listing = await asyncio.to_thread(
                _ls_tree, gitdir, f"{commit}:{path}" if path else commit, recursive=False
            )
            return JSONResponse(
                [
                    self._content_entry(base, owner, repo, ref, e, f"{path}/{e[4]}".lstrip("/"))
                    for e in listing
                ]
            )
        entry = self._content_entry(base, owner, repo, ref, (mode, kind, sha, size, path), path)
        if entry["type"] == "file":
            data = await asyncio.to_thread(_git, gitdir, "cat-file", "blob", sha)
            if len(data) > MAX_INLINE_CONTENT:
                entry["content"], entry["encoding"] = "", "none"
            else:
                b64 = base64.b64encode(data).decode()
                # GitHub wraps the base64 text at 60 characters, each line ending in "\n".
                entry["content"] = "".join(b64[i : i + 60] + "\n" for i in range(0, len(b64), 60))
                entry["encoding"] = "base64"
        elif entry["type"] == "symlink":
            target = await asyncio.to_thread(_git, gitdir, "cat-file", "blob", sha)
            entry["target"] = target.decode(errors="replace")
        elif entry["type"] == "submodule":
            entry["submodule_git_url"] = ""
        return JSONResponse(entry)

    @staticmethod
    def _content_entry(
        base: str, owner: str, repo: str, ref: str, e: tuple, path: str
    ) -> dict[str, Any]:
        mode, kind, sha, size, _ = e
        typ = {"tree": "dir", "commit": "submodule"}.get(kind, "file")
        if mode == "120000":
            typ = "symlink"
        name = path.rsplit("/", 1)[-1]
        url = f"{base}/repos/{owner}/{repo}/contents/{path}?ref={ref}"
        git_url = f"{base}/repos/{owner}/{repo}/git/{'trees' if kind == 'tree' else 'blobs'}/{sha}"
        html_url = f"{base}/{owner}/{repo}/{'tree' if kind == 'tree' else 'blob'}/{ref}/{path}"
        return {
            "type": typ,
            "size": size or 0,
            "name": name,
            "path": path,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"{base}/{owner}/{repo}/raw/{ref}/{path}" if typ == "file" else None,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    # -- statuses --------------------------------------------------------------------------

    def _user(self, base: str, login: str | None = None) -> dict[str, Any]:
        """The token's user (labci, a bot), or another ``login`` (a person)."""
        login = login or self.login
        own = login == self.login
        uid = 4242 if own else issue_comments.user_id(login)
        u = f"{base}/users/{login}"
        return {
            "login": login,
            "id": uid,
            "node_id": base64.b64encode(f"04:User{uid}".encode()).decode(),
            "avatar_url": f"{base}/avatars/{login}",
            "gravatar_id": "",
            "url": u,
            "html_url": f"{base}/{login}",
            "followers_url": f"{u}/followers",
            "following_url": f"{u}/following{{/other_user}}",
            "gists_url": f"{u}/gists{{/gist_id}}",
            "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{u}/subscriptions",
            "organizations_url": f"{u}/orgs",
            "repos_url": f"{u}/repos",
            "events_url": f"{u}/events{{/privacy}}",
            "received_events_url": f"{u}/received_events",
            "type": "Bot" if own else "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    async def _post_status(self, request: Request, rec: Recorded, owner: str, repo: str, sha: str):
        doc = f"{DOCS}/commits/statuses#create-a-commit-status"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        body = rec.json
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON", doc)

        def invalid(fld: str, message: str) -> JSONResponse:
            return _error(
                422,
                "Validation Failed",
                doc,
                errors=[{"resource": "Status", "code": "custom", "field": fld, "message": message}],
            )

        state = body.get("state")
        if state not in STATUS_STATES:
            return invalid("state", "state is not included in the list")
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            return invalid("description", "description is invalid")
        if description is not None and len(description) > MAX_DESCRIPTION:
            return invalid("description", "description is too long (maximum is 140 characters)")
        target_url = body.get("target_url")
        if target_url is not None and not isinstance(target_url, str):
            return invalid("target_url", "target_url is invalid")
        context = body.get("context", "default")
        if context is None:
            context = "default"
        if not isinstance(context, str):
            return invalid("context", "context is invalid")
        commit = None
        if _SHA.match(sha):
            commit = await asyncio.to_thread(_resolve, gitdir, sha, "commit")
        if commit != sha:
            return _error(422, f"No commit found for SHA: {sha}", doc)
        base = self._base(request)
        key = (owner, repo, sha)
        with self._lock:
            existing = self.statuses.setdefault(key, [])
            same = sum(1 for s in existing if s["context"].lower() == context.lower())
            if same >= self.max_statuses_per_context:
                return invalid(
                    "context", "This SHA and context has reached the maximum number of statuses."
                )
            sid = self._next_status_id
            self._next_status_id += 1
            now = _now()
            status = {
                "url": f"{base}/repos/{owner}/{repo}/statuses/{sha}",
                "avatar_url": f"{base}/avatars/{self.login}",
                "id": sid,
                "node_id": base64.b64encode(f"012:StatusContext{sid}".encode()).decode(),
                "state": state,
                "description": description,
                "target_url": target_url,
                "context": context,
                "created_at": now,
                "updated_at": now,
                "creator": self._user(base),
            }
            existing.append(status)
        response = JSONResponse(status, 201, headers={"location": status["url"]})
        response.committed = "status"  # type: ignore[attr-defined]
        return response

    def _for_ref(self, gitdir: Path, owner: str, repo: str, ref: str) -> tuple[str | None, list]:
        commit = _resolve(gitdir, ref, "commit")
        if commit is None:
            return None, []
        with self._lock:
            return commit, list(reversed(self.statuses.get((owner, repo, commit), [])))

    async def _list(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(f"{DOCS}/commits/statuses#list-commit-statuses-for-a-reference")
        owner, repo, gitdir = found
        _commit, newest_first = await asyncio.to_thread(self._for_ref, gitdir, owner, repo, ref)
        return self._paged(request, rec, newest_first)

    def _paged(self, request: Request, rec: Recorded, items: Sequence[Any]) -> JSONResponse:
        """One page of ``items`` (``page``/``per_page`` as GitHub reads them) with its links."""
        page, per_page = _paging(rec.query)
        chunk = items[(page - 1) * per_page : page * per_page]
        links = _page_links(f"{self._base(request)}{rec.path}", page, per_page, len(items))
        return JSONResponse(list(chunk), headers=links)

    async def _combined(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        doc = f"{DOCS}/commits/statuses#get-the-combined-status-for-a-specific-reference"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        commit, newest_first = await asyncio.to_thread(self._for_ref, gitdir, owner, repo, ref)
        if commit is None:
            return _error(404, f"No commit found for SHA: {ref}", doc)
        latest: dict[str, dict[str, Any]] = {}
        for s in newest_first:
            latest.setdefault(s["context"].lower(), s)
        states = [s["state"] for s in latest.values()]
        if any(s in ("error", "failure") for s in states):
            combined = "failure"
        elif not states or "pending" in states:
            combined = "pending"
        else:
            combined = "success"
        page, per_page = _paging(rec.query)
        items = list(latest.values())[(page - 1) * per_page : page * per_page]
        base = self._base(request)
        return JSONResponse(
            {
                "state": combined,
                "statuses": [
                    {k: v for k, v in s.items() if k != "creator"} | {"required": False}
                    for s in items
                ],
                "sha": commit,
                "total_count": len(latest),
                "repository": self._repository(base, owner, repo),
                "commit_url": f"{base}/repos/{owner}/{repo}/commits/{commit}",
                "url": f"{base}/repos/{owner}/{repo}/commits/{commit}/status",
            }
        )

    # -- commits, comparisons, pull request files (bodies built in compare.py) -------------

    async def _commit(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        doc = f"{DOCS}/commits/commits#get-a-commit"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        sha = await asyncio.to_thread(_resolve, gitdir, ref, "commit")
        if sha is None:
            return _error(422, f"No commit found for SHA: {ref}", doc)
        site = Site(self._base(request), owner, repo)
        body = await asyncio.to_thread(compare.commit_with_files, partial(_git, gitdir), site, sha)
        return JSONResponse(body)

    async def _compare(self, request: Request, rec: Recorded, owner: str, repo: str, basehead: str):
        doc = f"{DOCS}/commits/commits#compare-two-commits"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        refs = compare.split_basehead(owner, basehead)
        if refs is None:
            return _not_found(doc)
        base, head = [await asyncio.to_thread(_resolve, gitdir, r, "commit") for r in refs]
        if base is None or head is None:
            return _not_found(doc)
        paged = "page" in rec.query or "per_page" in rec.query
        page, per_page = _paging(rec.query)
        body = await asyncio.to_thread(
            compare.comparison,
            partial(_git, gitdir),
            Site(self._base(request), owner, repo),
            basehead=basehead,
            base=base,
            head=head,
            page=(page, per_page) if paged else None,
        )
        if body is None:
            return _error(404, f"No common ancestor between {refs[0]} and {refs[1]}.", doc)
        url = f"{self._base(request)}{rec.path}"
        links = _page_links(url, page, per_page, body["total_commits"]) if paged else None
        return JSONResponse(body, headers=links)

    async def _pull_files(
        self, request: Request, rec: Recorded, owner: str, repo: str, number: str
    ):
        doc = f"{DOCS}/pulls/pulls#list-pull-requests-files"
        found = self._repo(owner, repo)
        if found is None or not number.isdigit():
            return _not_found(doc)
        owner, repo, gitdir = found
        with self._lock:
            pr = self.pull_requests.get((owner.lower(), repo.lower(), int(number)))
        if pr is None:
            return _not_found(doc)
        refs = (pr.base_ref, pr.head_ref)
        base, head = [await asyncio.to_thread(_resolve, gitdir, r, "commit") for r in refs]
        if base is None or head is None:
            return _not_found(doc)
        entries = await asyncio.to_thread(
            compare.pull_request_files,
            partial(_git, gitdir),
            Site(self._base(request), owner, repo),
            base=base,
            head=head,
        )
        return self._paged(request, rec, entries)

    async def _get_pull(self, request: Request, rec: Recorded, owner: str, repo: str, number: str):
        """One pull request, its head and base resolved now (body built in pulls.py)."""
        doc = f"{DOCS}/pulls/pulls#get-a-pull-request"
        found = self._pull_request(owner, repo, number)
        if found is None:
            return _not_found(doc)
        owner, repo, num = found
        gitdir = self.repos_root / owner / f"{repo}.git"
        with self._lock:
            pr = self.pull_requests[(owner.lower(), repo.lower(), num)]
        site = Site(self._base(request), owner, repo)
        body = await self._pull_body(site, gitdir, pr, pulls.pull_request)
        if body is None:
            return _not_found(doc)  # a branch is gone: GitHub would have closed it
        return JSONResponse(body)

    async def _pull_body(
        self, site: Site, gitdir: Path, pr: PullRequest, shape: Callable[..., dict[str, Any]]
    ) -> dict[str, Any] | None:
        """``pull-request`` (or ``-simple``, by ``shape``) of ``pr``; None when a branch of an
        open one is gone. A merged one whose head branch is gone shows its merge commit."""
        key = (site.owner.lower(), site.repo.lower(), pr.number)
        with self._lock:
            visibility = self._visibility.get(key[:2], "public")
            merge = self.merges.get(key)
        refs = (pr.head_ref, pr.base_ref)
        head, base = [await asyncio.to_thread(_resolve, gitdir, r, "commit") for r in refs]
        if merge is not None and head is None:
            head = merge.merge_commit_sha
        if head is None or base is None:
            return None
        repository = full_repository.full_repository(
            self._repository(site.base, site.owner, site.repo),
            clone_url=gitdir.as_uri(),
            visibility=visibility,
            default_branch=pr.base_ref,
            pushed_at=_now(),
        )
        return shape(
            site,
            pr,
            head_sha=head,
            base_sha=base,
            repository=repository | {"has_downloads": True},
            author=self._user(site.base, site.owner),
            merge=merge,
        )

    async def _pulls_of(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        """The pull requests GitHub associates with a commit: on the default branch, the
        merged one that brought it in; elsewhere also the open ones whose head has it."""
        doc = f"{DOCS}/commits/commits#list-pull-requests-associated-with-a-commit"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        sha = await asyncio.to_thread(_resolve, gitdir, ref, "commit")
        if sha is None:
            return _error(422, f"No commit found for SHA: {ref}", doc)
        with self._lock:
            mine = [
                (pr, self.merges.get(key))
                for key, pr in sorted(self.pull_requests.items())
                if key[:2] == (owner.lower(), repo.lower())
            ]
        on_default = await asyncio.to_thread(_on_default_branch, gitdir, sha)
        site = Site(self._base(request), owner, repo)
        listed = []
        for pr, merge in mine:
            if merge is not None:
                brought = await asyncio.to_thread(_brought_in, gitdir, merge.merge_commit_sha)
                wanted = sha in brought
            else:
                wanted = not on_default and await asyncio.to_thread(_has_commit, gitdir, pr, sha)
            body = await self._pull_body(site, gitdir, pr, pulls.pull_request_simple)
            if wanted and body is not None:
                listed.append(body)
        return self._paged(request, rec, listed)

    # -- pull-request comments (shapes and refusals in comments.py) ------------------------

    def _pull_request(self, owner: str, repo: str, number: str) -> tuple[str, str, int] | None:
        """(owner, repo, number) of an open pull request, canonical names; None if unknown."""
        found = self._repo(owner, repo)
        if found is None or not number.isdigit():
            return None
        owner, repo, _gitdir = found
        with self._lock:
            known = (owner.lower(), repo.lower(), int(number)) in self.pull_requests
        return (owner, repo, int(number)) if known else None

    def _render_comment(
        self, request: Request, owner: str, repo: str, comment: issue_comments.Comment
    ) -> dict[str, Any]:
        base = self._base(request)
        return issue_comments.render(Site(base, owner, repo), comment, partial(self._user, base))

    async def _list_comments(
        self, request: Request, rec: Recorded, owner: str, repo: str, number: str
    ):
        doc = f"{COMMENTS_DOC}#list-issue-comments"
        found = self._pull_request(owner, repo, number)
        if found is None:
            return _not_found(doc)
        comments = self._comments.on_pull_request(*found)
        since = rec.query.get("since")
        if since is not None:
            comments = issue_comments.updated_since(comments, str(since))
            if comments is None:
                return _error(422, f"Invalid value for since: {since}", doc)
        rendered = [self._render_comment(request, found[0], found[1], c) for c in comments]
        return self._paged(request, rec, rendered)

    async def _create_comment(
        self, request: Request, rec: Recorded, owner: str, repo: str, number: str
    ):
        doc = f"{COMMENTS_DOC}#create-an-issue-comment"
        found = self._pull_request(owner, repo, number)
        if found is None:
            return _not_found(doc)
        refused = issue_comments.body_error(rec.json, doc)
        if refused is not None:
            return refused
        comment = self._comments.create(*found, rec.json["body"], self.login)
        body = self._render_comment(request, found[0], found[1], comment)
        response = JSONResponse(body, 201, headers={"location": body["url"]})
        response.committed = "comment"  # type: ignore[attr-defined]
        return response

    async def _edit(self, request: Request, rec: Recorded, owner: str, repo: str, cid: str):
        doc = f"{COMMENTS_DOC}#update-an-issue-comment"
        found = self._repo(owner, repo)
        if found is None or not cid.isdigit():
            return _not_found(doc)
        owner, repo, _gitdir = found
        if not self._comments.exists(owner, repo, int(cid)):
            return _not_found(doc)
        refused = issue_comments.body_error(rec.json, doc)
        if refused is not None:
            return refused
        comment = self._comments.update(owner, repo, int(cid), rec.json["body"])
        if comment is None:  # only if comments could be deleted meanwhile
            return _not_found(doc)
        response = JSONResponse(self._render_comment(request, owner, repo, comment))
        response.committed = "comment"  # type: ignore[attr-defined]
        return response

    # -- commit comments (shapes in commit_comments.py) ------------------------------------

    async def _on_commit(self, owner: str, repo: str, ref: str) -> tuple[str, str, str] | None:
        """(owner, repo, full sha) of a commit named by its full or abbreviated sha."""
        found = self._repo(owner, repo)
        if found is None:
            return None
        owner, repo, gitdir = found
        sha = await asyncio.to_thread(_resolve, gitdir, ref, "commit")
        return None if sha is None else (owner, repo, sha)

    def _render_commit_comment(
        self, request: Request, owner: str, repo: str, comment: commit_comments.CommitComment
    ) -> dict[str, Any]:
        base = self._base(request)
        return commit_comments.render(Site(base, owner, repo), comment, partial(self._user, base))

    async def _list_commit_comments(
        self, request: Request, rec: Recorded, owner: str, repo: str, ref: str
    ):
        found = await self._on_commit(owner, repo, ref)
        if found is None:
            return _not_found(f"{COMMIT_COMMENTS_DOC}#list-commit-comments")
        owner, repo, sha = found
        comments = self._commit_comments.on_commit(owner, repo, sha)
        rendered = [self._render_commit_comment(request, owner, repo, c) for c in comments]
        return self._paged(request, rec, rendered)

    async def _create_commit_comment(
        self, request: Request, rec: Recorded, owner: str, repo: str, ref: str
    ):
        doc = f"{COMMIT_COMMENTS_DOC}#create-a-commit-comment"
        found = await self._on_commit(owner, repo, ref)
        if found is None:
            return _not_found(doc)
        refused = issue_comments.body_error(rec.json, doc)
        if refused is not None:
            return refused
        owner, repo, sha = found
        comment = self._commit_comments.create(owner, repo, sha, rec.json["body"], self.login)
        body = self._render_commit_comment(request, owner, repo, comment)
        response = JSONResponse(body, 201, headers={"location": body["url"]})
        response.committed = "comment"  # type: ignore[attr-defined]
        return response

    async def _edit_on_commit(
        self, request: Request, rec: Recorded, owner: str, repo: str, cid: str
    ):
        doc = f"{COMMIT_COMMENTS_DOC}#update-a-commit-comment"
        found = self._repo(owner, repo)
        if found is None or not cid.isdigit():
            return _not_found(doc)
        owner, repo, _gitdir = found
        refused = issue_comments.body_error(rec.json, doc)
        if refused is not None:
            return refused
        comment = self._commit_comments.update(owner, repo, int(cid), rec.json["body"])
        if comment is None:
            return _not_found(doc)
        response = JSONResponse(self._render_commit_comment(request, owner, repo, comment))
        response.committed = "comment"  # type: ignore[attr-defined]
        return response

    # -- the repository and its App installation (shapes in repository.py, apps.py) -------

    async def _get_repository(self, request: Request, rec: Recorded, owner: str, repo: str):
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(f"{DOCS}/repos/repos#get-a-repository")
        owner, repo, gitdir = found
        try:
            head = await asyncio.to_thread(_git, gitdir, "symbolic-ref", "--short", "HEAD")
            default_branch = head.decode().strip()
        except GitError:
            default_branch = "main"
        with self._lock:
            visibility = self._visibility.get((owner.lower(), repo.lower()), "public")
        body = full_repository.full_repository(
            self._repository(self._base(request), owner, repo),
            clone_url=gitdir.as_uri(),
            visibility=visibility,
            default_branch=default_branch,
            pushed_at=_now(),
        )
        return JSONResponse(body)

    async def _repo_installation(self, request: Request, rec: Recorded, owner: str, repo: str):
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(
                f"{DOCS}/apps/apps#get-a-repository-installation-for-the-authenticated-app"
            )
        owner, repo, _gitdir = found
        base = self._base(request)
        return self.apps.installation_of(
            rec.headers.get("authorization", ""), f"{owner}/{repo}", base, partial(self._user, base)
        )

    # -- signing in with GitHub and collaborators' permissions (shapes in oauth.py) --------

    async def _oauth_authorize(self, request: Request, rec: Recorded):
        return self.oauth.authorize(rec.query)

    async def _oauth_access_token(self, request: Request, rec: Recorded):
        form = github_oauth.parse_form(rec.body)
        return self.oauth.access_token(form, rec.headers.get("accept", ""))

    async def _authenticated_user(self, request: Request, rec: Recorded):
        base = self._base(request)
        person = self.oauth.person_of(rec.token)
        if person is None:  # the server's own token: its bot
            bot = self._user(base)
            own = github_oauth.Person(bot["login"], bot["id"])
            return JSONResponse(github_oauth.authenticated_user(bot, own) | {"type": "Bot"})
        return JSONResponse(github_oauth.authenticated_user(self._user(base, person.login), person))

    async def _collaborator_permission(
        self, request: Request, rec: Recorded, owner: str, repo: str, username: str
    ):
        role = self.oauth.permission(owner, repo, username)
        if role is None:
            return _not_found(github_oauth.PERMISSION_DOC)
        user = self._user(self._base(request), username)
        known = self.oauth.id_of(username)
        if known is not None:
            user |= {"id": known}
        return JSONResponse(github_oauth.permission_body(role, user))

    # -- the App's access tokens and check runs (shapes and refusals in apps.py, checks.py) -

    async def _access_token(self, request: Request, rec: Recorded, installation_id: str):
        return self.apps.mint(rec.headers.get("authorization", ""), installation_id)

    def _writer(self, rec: Recorded, doc: str) -> int | JSONResponse:
        """The App whose installation token made the request, or GitHub's 403."""
        grant = self.apps.grant(rec.token or "")
        if grant is None:
            return _error(403, "You must authenticate via a GitHub App.", doc)
        return grant.app_id

    async def _create_run(self, request: Request, rec: Recorded, owner: str, repo: str):
        doc = f"{CHECKS_DOC}#create-a-check-run"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        app_id = self._writer(rec, doc)
        if isinstance(app_id, Response):
            return app_id
        values = checks.changes(rec.json, creating=True, doc=doc)
        if isinstance(values, Response):
            return values
        sha = values["head_sha"]
        commit = (
            await asyncio.to_thread(_resolve, gitdir, sha, "commit") if _SHA.match(sha) else None
        )
        if commit != sha:
            return _error(422, f"No commit found for SHA: {sha}", doc)
        run = self._check_runs.create(owner, repo, values | {"app_id": app_id})
        body = await self._render_runs(request, owner, repo, gitdir, [run])
        response = JSONResponse(body[0], 201, headers={"location": body[0]["url"]})
        response.committed = "check_run"  # type: ignore[attr-defined]
        return response

    async def _update_run(self, request: Request, rec: Recorded, owner: str, repo: str, rid: str):
        doc = f"{CHECKS_DOC}#update-a-check-run"
        found = self._repo(owner, repo)
        if found is None or not rid.isdigit():
            return _not_found(doc)
        owner, repo, gitdir = found
        app_id = self._writer(rec, doc)
        if isinstance(app_id, Response):
            return app_id
        existing = self._check_runs.get(owner, repo, int(rid))
        if existing is None:
            return _not_found(doc)
        if existing.app_id != app_id:
            message = (
                f"Invalid app_id `{app_id}` - check run can only be modified by the GitHub App "
                "that created it."
            )
            return _error(403, message, doc)
        values = checks.changes(rec.json, creating=False, doc=doc)
        if isinstance(values, Response):
            return values
        run = self._check_runs.update(owner, repo, int(rid), values)
        if run is None:  # only if runs could be deleted meanwhile
            return _not_found(doc)
        body = await self._render_runs(request, owner, repo, gitdir, [run])
        response = JSONResponse(body[0])
        response.committed = "check_run"  # type: ignore[attr-defined]
        return response

    async def _runs(self, request: Request, rec: Recorded, owner: str, repo: str, ref: str):
        doc = f"{CHECKS_DOC}#list-check-runs-for-a-git-reference"
        found = self._repo(owner, repo)
        if found is None:
            return _not_found(doc)
        owner, repo, gitdir = found
        sha = await asyncio.to_thread(_resolve, gitdir, ref, "commit")
        if sha is None:
            return _error(422, f"No commit found for SHA: {ref}", doc)
        query = {k: v for k, v in rec.query.items() if isinstance(v, str)}
        runs = checks.select(self._check_runs.on_commit(owner, repo, sha), query)
        page, per_page = _paging(rec.query)
        chunk = runs[(page - 1) * per_page : page * per_page]
        rendered = await self._render_runs(request, owner, repo, gitdir, chunk)
        kept = {k: v for k, v in query.items() if k not in ("page", "per_page")}
        url = f"{self._base(request)}{rec.path}"
        links = _page_links(url, page, per_page, len(runs), kept)
        return JSONResponse({"total_count": len(runs), "check_runs": rendered}, headers=links)

    async def _render_runs(
        self, request: Request, owner: str, repo: str, gitdir: Path, runs: list[checks.CheckRun]
    ) -> list[dict[str, Any]]:
        """``check-run`` JSON, with the open pull requests whose head is the run's commit."""
        base = self._base(request)
        site = Site(base, owner, repo)
        with self._lock:
            pulls = [
                pr
                for (o, r, _n), pr in self.pull_requests.items()
                if (o, r) == (owner.lower(), repo.lower())
            ]
        heads = {}
        for sha in {run.head_sha for run in runs}:
            heads[sha] = await asyncio.to_thread(
                checks.pull_requests_at, site, pulls, sha, partial(_resolve, gitdir, kind="commit")
            )
        user = partial(self._user, base)
        return [
            checks.render(
                site,
                run,
                github_apps.app_object(self.apps.app(run.app_id), run.app_id, base, user),
                heads[run.head_sha],
            )
            for run in runs
        ]

    def _repository(self, base: str, owner: str, repo: str) -> dict[str, Any]:
        api = f"{base}/repos/{owner}/{repo}"
        owner_obj = self._user(base) | {"login": owner, "type": "User"}
        u = f"{base}/users/{owner}"
        owner_obj |= {
            "url": u,
            "html_url": f"{base}/{owner}",
            "avatar_url": f"{base}/avatars/{owner}",
            "repos_url": f"{u}/repos",
        }
        templates = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        return {
            "id": zlib.crc32(f"{owner}/{repo}".encode()),
            "node_id": base64.b64encode(f"010:Repository{owner}/{repo}".encode()).decode(),
            "name": repo,
            "full_name": f"{owner}/{repo}",
            "owner": owner_obj,
            "private": False,
            "html_url": f"{base}/{owner}/{repo}",
            "description": None,
            "fork": False,
            "url": api,
            **{k: api + v for k, v in templates.items()},
        }


def _default_branch(gitdir: Path) -> str:
    try:
        return _git(gitdir, "symbolic-ref", "--short", "HEAD").decode().strip()
    except GitError:
        return "main"


def _on_default_branch(gitdir: Path, sha: str) -> bool:
    try:
        _git(gitdir, "merge-base", "--is-ancestor", sha, f"refs/heads/{_default_branch(gitdir)}")
    except GitError:
        return False
    return True


def _brought_in(gitdir: Path, merge_commit_sha: str) -> set[str]:
    """The commits a merge commit (or a squashed commit) added to its first parent's line."""
    parents = _git(gitdir, "rev-list", "--parents", "-n", "1", merge_commit_sha).split()
    if len(parents) < 2:
        return {merge_commit_sha}
    listed = _git(gitdir, "rev-list", merge_commit_sha, f"^{parents[1].decode()}")
    return set(listed.decode().split())


def _has_commit(gitdir: Path, pr: PullRequest, sha: str) -> bool:
    """Whether the open pull request's head has the commit and its base does not."""
    try:
        listed = _git(gitdir, "rev-list", f"refs/heads/{pr.head_ref}", f"^refs/heads/{pr.base_ref}")
    except GitError:
        return False
    return sha in listed.decode().split()


def _page_links(
    url: str, page: int, per_page: int, total: int, query: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """GitHub's ``link`` header: next and last unless on the last page, prev and first unless
    on the first. The request's other ``query`` parameters are kept in each link."""
    last = max(1, math.ceil(total / per_page))
    rels = [("next", page + 1), ("last", last)] if page < last else []
    if page > 1:
        rels = [("prev", page - 1), *rels, ("first", 1)]
    links = [
        f'<{url}?{urlencode({**(query or {}), "per_page": per_page, "page": n})}>; rel="{rel}"'
        for rel, n in rels
    ]
    return {"link": ", ".join(links)} if links else None


def _paging(query: Mapping[str, Any]) -> tuple[int, int]:
    def num(name: str, default: int) -> int:
        v = query.get(name)
        try:
            return int(v) if isinstance(v, str) else default
        except ValueError:
            return default

    return max(1, num("page", 1)), min(100, max(1, num("per_page", 30)))


def create_standin(
    repos_root: Path,
    checker: OpenAPIChecker,
    *,
    tokens: Collection[str] | None = None,
    login: str = "labci-bot",
    max_statuses_per_context: int = 1000,
) -> Standin:
    """A stand-in serving the bare repositories under ``repos_root/<owner>/<repo>.git``.

    ``tokens``: accepted tokens (any non-empty token when None).
    """
    return Standin(
        repos_root,
        checker,
        tokens=tokens,
        login=login,
        max_statuses_per_context=max_statuses_per_context,
    )
