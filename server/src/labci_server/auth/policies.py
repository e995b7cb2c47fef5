"""The policy of every route, declared where the route is, enforced before its handler.

Each route of the application depends on exactly one `Policy`; a test walks the routes and
fails for any without one, so no route can ship open by accident. A policy runs before the
request's body is read (handlers of guarded routes parse their bodies themselves), so a
caller without the right credential costs a header check, not a body.

What a caller may not see answers 404, as if it did not exist (ids are sequential: a 403
would confirm that a private run exists). What a caller may see but not change answers 403,
or 401 when nobody is signed in. Cookie sessions must also send the session's CSRF token
on anything that changes state (see `sessions.py`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, Request

from ..api.deps import get_context
from ..context import ServerContext
from ..db.models import Repository
from ..db.queries.history import repositories_named
from ..db.queries.visible import repository_of_job, repository_of_run
from ..errors import Forbidden, NotFound, Unauthorized
from ..http.params import MAX_INT32
from ..tokens import HOOK_TOKEN_PREFIX, JOB_TOKEN_PREFIX, RUNNER_TOKEN_PREFIX
from .levels import at_least
from .permissions import repository_level
from .principal import ANONYMOUS, Principal, bearer_of, identify
from .sessions import check_csrf

SAFE_METHODS: Final = ("GET", "HEAD", "OPTIONS")
BADGE_NOT_FOUND: Final = "no such repository here (a private repository's badges need its ?token=)"


@dataclass(frozen=True)
class Access:
    """What a policy found: who calls, and the repository the route acts on (if any)."""

    principal: Principal
    repository: Repository | None = None
    level: str = "none"


class Policy:
    """A route's policy; `name` is shown in the OpenAPI description and by the tests."""

    name: str = "?"

    async def __call__(self, request: Request) -> Access:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Policy({self.name})"


class Public(Policy):
    """Anyone: health, sign-in pages, the API description and its docs page."""

    name = "public"

    async def __call__(self, request: Request) -> Access:
        return Access(ANONYMOUS)


class Declared(Policy):
    """A credential inside the body that the handler checks (a single-use registration
    token); the body is capped small before it is read."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, request: Request) -> Access:
        return Access(ANONYMOUS)


class Credential(Policy):
    """Machine credentials checked by the handler's stage function (a GitHub signature, the
    local hook's token, a runner's or a job's token); here only their presence and kind, so
    that a call without one — or with a person's token — is refused before its body is
    read."""

    def __init__(self, name: str, *, header: str | None = None, prefix: str = "") -> None:
        self.name = name
        self.header = header
        self.prefix = prefix

    async def __call__(self, request: Request) -> Access:
        if self.header is None:
            given = bearer_of(request) or ""
            what = f"Authorization: Bearer {self.prefix}_…" if self.prefix else "a bearer token"
        else:
            given = request.headers.get(self.header, "")
            what = self.header
        if not given or not given.startswith(self.prefix):
            raise Unauthorized(f"this route needs a {self.name.replace('-', ' ')} ({what})")
        return Access(ANONYMOUS)


class SignedIn(Policy):
    """Anyone signed in (or with a valid token of at least `scope`)."""

    def __init__(self, scope: str = "read") -> None:
        self.scope = scope
        self.name = "signed-in" if scope == "read" else f"signed-in:{scope}"

    async def __call__(self, request: Request) -> Access:
        principal = await _caller(request)
        if not principal.signed_in:
            raise Unauthorized("sign in, or send a personal API token (Authorization: Bearer)")
        if not at_least(principal.scope, self.scope):
            raise Forbidden(f"this needs a token with the {self.scope} scope")
        if request.method not in SAFE_METHODS:
            await limit_writes(request)
        return Access(principal)


class ServerAdmin(Policy):
    """A server administrator, acting with full power."""

    name = "server-admin"

    async def __call__(self, request: Request) -> Access:
        principal = await _caller(request)
        if not principal.signed_in:
            raise Unauthorized("sign in as an administrator")
        if not principal.is_admin:
            raise Forbidden("only a server administrator (with an admin-scoped token) may")
        if request.method not in SAFE_METHODS:
            await check_csrf(request, principal)
            await limit_writes(request)
        return Access(principal)


class Listing(Policy):
    """Anyone; what is listed is limited to the repositories the caller may read."""

    name = "listing"

    async def __call__(self, request: Request) -> Access:
        return Access(await _caller(request))


class RepoAccess(Policy):
    """`level` on the repository the route's path names: by run, by job, or owner/name."""

    def __init__(self, level: str, by: str) -> None:
        self.level, self.by = level, by
        self.name = f"repo:{level} by {by}"

    async def __call__(self, request: Request) -> Access:
        principal = await _caller(request)
        sc: ServerContext = get_context(request)
        repo = await self._repository(sc, request)
        return await require_level(sc, request, principal, repo, self.level)

    async def _repository(self, sc: ServerContext, request: Request) -> Repository | None:
        params = request.path_params
        async with sc.sessions() as session:
            if self.by == "run":
                run_id = parse_row_id(params.get("run_id"))
                return await repository_of_run(session, run_id) if run_id else None
            if self.by == "job":
                job_id = parse_row_id(params.get("job_id"))
                return await repository_of_job(session, job_id) if job_id else None
            owner, name = str(params.get("owner", "")), str(params.get("repo", ""))
            candidates = await repositories_named(session, owner=owner, name=name)
        from ..web.badge_tokens import pick_repository

        return pick_repository(candidates, owner, name)


class BadgeRead(Policy):
    """Read on owner/repo, or a private repository's badge token in `?token=` (README
    images carry no session): without either, 404 as for an unknown repository."""

    name = "repo:read by owner/repo, or its badge token"

    async def __call__(self, request: Request) -> Access:
        principal = await _caller(request)
        sc: ServerContext = get_context(request)
        repo = await READ_REPO._repository(sc, request)  # noqa: SLF001 — same lookup
        if repo is not None and repo.private and repo.badge_token:
            given = request.query_params.get("token")
            if given and hmac.compare_digest(given.encode(), repo.badge_token.encode()):
                return Access(principal, repo, "read")
        try:
            return await require_level(sc, request, principal, repo, "read")
        except (NotFound, Unauthorized, Forbidden) as exc:
            raise NotFound(BADGE_NOT_FOUND) from exc


class WriteNamedInBody(Policy):
    """Write on a repository the body names (a manual run): the caller must be signed in
    with a write-scoped credential before the body is read; the handler checks the
    repository with `require_level` once it knows which."""

    name = "repo:write named in body"

    async def __call__(self, request: Request) -> Access:
        principal = await _caller(request)
        if not principal.signed_in:
            raise Unauthorized("sign in, or send a personal API token (Authorization: Bearer)")
        if not at_least(principal.scope, "write"):
            raise Forbidden("this needs a token with the write scope")
        await check_csrf(request, principal)
        await limit_writes(request)
        return Access(principal)


async def require_level(
    sc: ServerContext,
    request: Request,
    principal: Principal,
    repo: Repository | None,
    level: str,
) -> Access:
    """`level` on `repo`, else 404 (cannot read), 401 (nobody signed in) or 403."""
    have = await repository_level(sc, principal, repo) if repo is not None else "none"
    if repo is None or not at_least(have, "read"):
        raise NotFound("no such thing here, or you may not see it (sign in?)")
    if not at_least(have, level):
        if not principal.signed_in:
            raise Unauthorized(f"sign in: this needs {level} permission on {repo.full_name}")
        raise Forbidden(f"{principal.name} has {have} permission on {repo.full_name}, not {level}")
    if level != "read" and request.method not in SAFE_METHODS:
        await check_csrf(request, principal)
        await limit_writes(request)
    return Access(principal, repo, have)


async def limit_writes(request: Request) -> None:
    """One write of this caller's budget (LABCI_WRITE_RATE_LIMIT); 429 once it is spent."""
    # Imported here: the HTTP guards' docs page depends on this module's policies.
    from ..http.ratelimit import limit_writes as spend

    await spend(request)


def parse_row_id(raw: object) -> int | None:
    text = str(raw or "")
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_INT32 else None


async def _caller(request: Request) -> Principal:
    return await identify(get_context(request), request)


PUBLIC: Final = Public()
GITHUB_SIGNATURE: Final = Credential(
    "github-signature", header="x-hub-signature-256", prefix="sha256="
)
HOOK_TOKEN: Final = Credential("hook-token", prefix=HOOK_TOKEN_PREFIX)
REGISTRATION_TOKEN: Final = Declared("runner-registration")
RUNNER_TOKEN: Final = Credential("runner-token", prefix=RUNNER_TOKEN_PREFIX)
JOB_TOKEN: Final = Credential("job-token", prefix=JOB_TOKEN_PREFIX)
SIGNED_IN: Final = SignedIn()
SERVER_ADMIN: Final = ServerAdmin()
LISTING: Final = Listing()
READ_RUN: Final = RepoAccess("read", by="run")
WRITE_RUN: Final = RepoAccess("write", by="run")
READ_JOB: Final = RepoAccess("read", by="job")
READ_REPO: Final = RepoAccess("read", by="owner/repo")
ADMIN_REPO: Final = RepoAccess("admin", by="owner/repo")
WRITE_IN_BODY: Final = WriteNamedInBody()
BADGE: Final = BadgeRead()


# Routes that are not FastAPI endpoints (so cannot depend on a Policy) and are public by
# design: the API's own description, and static assets.
PUBLIC_MOUNTS: Final = ("/openapi.json", "/static")


def route_policies(route: object) -> list[Policy]:
    """The policies a route depends on (directly or through its dependencies)."""
    dependant = getattr(route, "dependant", None)
    found: list[Policy] = []
    stack = [dependant] if dependant is not None else []
    while stack:
        current = stack.pop()
        if isinstance(current.call, Policy):
            found.append(current.call)
        stack.extend(current.dependencies)
    return found


def policy(p: Policy) -> list[object]:
    """`dependencies=policy(READ_RUN)` for routes that do not need the Access itself."""
    return [Depends(p)]


Allowed = Annotated[Access, Depends(LISTING)]
