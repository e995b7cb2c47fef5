"""D14: every route declares its policy, and the policies hold for every kind of caller.

The application's routes are walked; a route without a `Policy` fails here, and so does a
route this file has no request for — a new route cannot ship without someone deciding who may
call it. Each route is then called as anonymous, an outsider (signed in, no permission), a
reader, a writer and a server administrator, against a public and a private repository, and
the answer must be what its policy promises: 2xx/3xx where allowed, else 401, 403 or 404
(a private repository's things are 404 to whoever may not read them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, Route

from helpers.people import bearer, make_token, make_user
from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.auth import accounts
from labci_server.auth.policies import PUBLIC_MOUNTS, route_policies
from labci_server.db.migrate import upgrade
from labci_server.db.models import Artifact, Event, Job, Metric, Repository, Run
from labci_spec import expand_job, load_workflow

WORKFLOW = """
name: train
on: push
jobs:
  fit:
    runs-on: [cpu]
    steps:
      - run: "true"
"""
JOB_SPEC = expand_job(load_workflow(WORKFLOW, ".labci/train.yml"), "fit")[0].model_dump(
    mode="json", by_alias=True
)
ROLES = ("anonymous", "outsider", "reader", "writer", "admin")
SHA = "c" * 40


@dataclass
class Fixture:
    client: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)
    repos: dict[str, Repository] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)


async def add_repository(sessions: Any, artifacts: Path, name: str, *, private: bool) -> tuple:
    async with sessions() as session, session.begin():
        repo = Repository(
            provider="github",
            full_name=f"octo/{name}",
            clone_url=f"https://github.invalid/octo/{name}.git",
            private=private,
        )
        session.add(repo)
        await session.flush()
        event = Event(
            delivery_id=f"d-{name}",
            provider="github",
            kind="push",
            repository_id=repo.id,
            commit_sha=SHA,
            branch="main",
            state="planned",
        )
        session.add(event)
        await session.flush()
        run = Run(
            event_id=event.id,
            repository_id=repo.id,
            workflow_path=".labci/train.yml",
            workflow_name="train",
            commit_sha=SHA,
            trigger="push",
            branch="main",
            state="running",
        )
        session.add(run)
        await session.flush()
        job = Job(
            run_id=run.id,
            job_key="fit",
            workflow_job="fit",
            context="labci/train/fit",
            spec=JOB_SPEC,
            runs_on=["cpu"],
            timeout_s=60,
            state="pending",
        )
        session.add(job)
        await session.flush()
        content = b"weights\n"
        session.add(Metric(job_id=job.id, attempt=1, name="acc", value=0.9))
        session.add(
            Artifact(
                job_id=job.id,
                attempt=1,
                path="model.txt",
                size_bytes=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
        )
    stored = artifacts / str(job.id) / "1" / "model.txt"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(content)
    return repo, run.id, job.id


@pytest.fixture
async def world(database_url, redis_url, tmp_path):
    settings = test_settings(database_url, redis_url, artifacts_dir=str(tmp_path / "artifacts"))
    await upgrade(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sessions = app.state.context.sessions
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as client:
            client.app = app  # type: ignore[attr-defined]
            fx = Fixture(client)
            for kind, private in (("public", False), ("private", True)):
                repo, run_id, job_id = await add_repository(
                    sessions, tmp_path / "artifacts", kind, private=private
                )
                fx.repos[kind], fx.runs[kind], fx.jobs[kind] = repo, run_id, job_id
            for role in ROLES[1:]:
                user = await make_user(sessions, role, admin=role == "admin")
                fx.tokens[role] = await make_token(sessions, user)
                if role in ("reader", "writer"):
                    for repo in fx.repos.values():
                        level = "read" if role == "reader" else "write"
                        await accounts.grant(sessions, repo=repo, user=user, level=level)
            yield fx


# --- one request per route ---------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: Any = None
    # Statuses that mean "let through" for this request besides 2xx/3xx (e.g. the handler's
    # own answer to a well-formed request that names nothing of the caller's).
    also_allowed: tuple[int, ...] = ()


def dispatch_body(fx: Fixture, kind: str) -> dict[str, Any]:
    repo = fx.repos[kind]
    return {
        "delivery_id": f"dispatch-{kind}",
        "provider": "github",
        "repo_full_name": repo.full_name,
        "clone_url": repo.clone_url,
        "branch": "main",
        "commit_sha": SHA,
        "workflow_path": ".labci/train.yml",
        "inputs": {},
    }


Builder = Callable[[Fixture, str], Call]


def job_report(action: str, body: dict[str, Any]) -> Builder:
    return lambda fx, k: Call("POST", f"/api/v1/runner/jobs/{fx.jobs[k]}/{action}", body)


# Keyed by (method, path template). `kind` is "public" or "private" for routes that act on a
# repository; other routes are called once with kind "public".
REQUESTS: dict[tuple[str, str], Builder] = {
    ("GET", "/healthz"): lambda fx, k: Call("GET", "/healthz"),
    ("GET", "/readyz"): lambda fx, k: Call("GET", "/readyz"),
    ("GET", "/metrics"): lambda fx, k: Call("GET", "/metrics"),
    ("GET", "/api/v1/runs"): lambda fx, k: Call("GET", "/api/v1/runs"),
    ("GET", "/api/v1/runs/{run_id}"): lambda fx, k: Call("GET", f"/api/v1/runs/{fx.runs[k]}"),
    ("GET", "/api/v1/outbox"): lambda fx, k: Call("GET", "/api/v1/outbox"),
    ("GET", "/jobs/{job_id}/log.txt"): lambda fx, k: Call("GET", f"/jobs/{fx.jobs[k]}/log.txt"),
    ("GET", "/jobs/{job_id}/log"): lambda fx, k: Call("GET", f"/jobs/{fx.jobs[k]}/log?before=10"),
    ("GET", "/jobs/{job_id}/logs/stream"): lambda fx, k: Call(
        "GET", f"/jobs/{fx.jobs[k]}/logs/stream?for_s=1"
    ),
    ("GET", "/api/v1/jobs/{job_id}/artifacts/{path:path}"): lambda fx, k: Call(
        "GET", f"/api/v1/jobs/{fx.jobs[k]}/artifacts/model.txt"
    ),
    ("POST", "/api/v1/runs/{run_id}/cancel"): lambda fx, k: Call(
        "POST", f"/api/v1/runs/{fx.runs[k]}/cancel", {}
    ),
    # Nothing in the fixture awaits approval: a writer is let through to the handler's 409.
    ("POST", "/api/v1/runs/{run_id}/approve"): lambda fx, k: Call(
        "POST", f"/api/v1/runs/{fx.runs[k]}/approve", {}, also_allowed=(409,)
    ),
    ("POST", "/runs/{run_id}/cancel"): lambda fx, k: Call("POST", f"/runs/{fx.runs[k]}/cancel", {}),
    ("POST", "/runs/{run_id}/rerun"): lambda fx, k: Call(
        "POST", f"/runs/{fx.runs[k]}/rerun", {}, also_allowed=(409,)
    ),
    ("POST", "/runners/{action}"): lambda fx, k: Call(
        "POST", "/runners/drain", {"name": "nobody"}, also_allowed=(404,)
    ),
    ("POST", "/runs/{run_id}/approve"): lambda fx, k: Call(
        "POST", f"/runs/{fx.runs[k]}/approve", {}, also_allowed=(409,)
    ),
    ("POST", "/api/v1/dispatches"): lambda fx, k: Call(
        "POST", "/api/v1/dispatches", dispatch_body(fx, k)
    ),
    ("POST", "/webhooks/github"): lambda fx, k: Call("POST", "/webhooks/github", {"zen": "x"}),
    ("POST", "/webhooks/git"): lambda fx, k: Call("POST", "/webhooks/git", {"kind": "push"}),
    ("POST", "/api/v1/runners/register"): lambda fx, k: Call(
        "POST", "/api/v1/runners/register", {"registration_token": "nope", "name": "r"}
    ),
    ("POST", "/api/v1/runners/heartbeat"): lambda fx, k: Call(
        "POST", "/api/v1/runners/heartbeat", {}
    ),
    ("GET", "/api/v1/runner/jobs/{job_id}"): lambda fx, k: Call(
        "GET", f"/api/v1/runner/jobs/{fx.jobs[k]}?attempt=1"
    ),
    **{
        ("POST", f"/api/v1/runner/jobs/{{job_id}}/{action}"): job_report(action, body)
        for action, body in (
            ("start", {"attempt": 1}),
            ("logs", {"attempt": 1, "lines": []}),
            ("complete", {"attempt": 1, "outcome": "success", "metrics": {"acc": 1.0}}),
            ("release", {"attempt": 1, "reason": "x"}),
        )
    },
    ("POST", "/api/v1/runner/jobs/{job_id}/steps/{index}"): lambda fx, k: Call(
        "POST", f"/api/v1/runner/jobs/{fx.jobs[k]}/steps/0", {"attempt": 1, "status": "success"}
    ),
    ("PUT", "/api/v1/runner/jobs/{job_id}/artifacts/{path:path}"): lambda fx, k: Call(
        "PUT", f"/api/v1/runner/jobs/{fx.jobs[k]}/artifacts/x.txt?attempt=1", "data"
    ),
    ("GET", "/api/v1/user"): lambda fx, k: Call("GET", "/api/v1/user"),
    ("GET", "/api/v1/tokens"): lambda fx, k: Call("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"): lambda fx, k: Call(
        "POST", "/api/v1/tokens", {"name": "made by the policy test", "scope": "read"}
    ),
    # Revoking a token that is not the caller's is a 404: the route let the caller through.
    ("DELETE", "/api/v1/tokens/{token_id}"): lambda fx, k: Call(
        "DELETE", "/api/v1/tokens/999999", also_allowed=(404,)
    ),
    ("GET", "/docs"): lambda fx, k: Call("GET", "/docs"),
    ("GET", "/docs/assets/{name}"): lambda fx, k: Call(
        "GET", "/docs/assets/swagger-ui.css", also_allowed=(404,)
    ),
    ("GET", "/login"): lambda fx, k: Call("GET", "/login"),
    # Without LABCI_GITHUB_OAUTH_CLIENT_ID, GitHub sign-in does not exist here.
    ("GET", "/login/github"): lambda fx, k: Call("GET", "/login/github", also_allowed=(404,)),
    ("GET", "/login/github/callback"): lambda fx, k: Call(
        "GET", "/login/github/callback?code=x&state=y", also_allowed=(400, 404)
    ),
    # Without the login page's CSRF token a sign-in is refused, whoever calls.
    ("POST", "/login"): lambda fx, k: Call(
        "POST", "/login", {"login": "x", "password": "y"}, also_allowed=(403,)
    ),
    ("POST", "/logout"): lambda fx, k: Call("POST", "/logout", {}),
    ("GET", "/account"): lambda fx, k: Call("GET", "/account"),
    ("POST", "/account/tokens"): lambda fx, k: Call(
        "POST", "/account/tokens", {"name": "web", "scope": "read", "expires_in_days": "7"}
    ),
    ("POST", "/account/tokens/{token_id}/revoke"): lambda fx, k: Call(
        "POST", "/account/tokens/999999/revoke", {}, also_allowed=(404,)
    ),
    ("GET", "/"): lambda fx, k: Call("GET", "/"),
    ("GET", "/runs"): lambda fx, k: Call("GET", "/runs?state=finished"),
    ("GET", "/runners"): lambda fx, k: Call("GET", "/runners"),
    ("GET", "/api/v1/runners"): lambda fx, k: Call("GET", "/api/v1/runners"),
    ("GET", "/runs/{run_id}"): lambda fx, k: Call("GET", f"/runs/{fx.runs[k]}"),
    ("GET", "/runs/{run_id}/compare"): lambda fx, k: Call(
        "GET", f"/runs/{fx.runs[k]}/compare?with={fx.runs['public']}"
    ),
    ("GET", "/runs/{run_id}/pull-request"): lambda fx, k: Call(
        "GET", f"/runs/{fx.runs[k]}/pull-request", also_allowed=(404,)
    ),
    ("GET", "/badges/{owner}/{repo}/{workflow}.svg"): lambda fx, k: Call(
        "GET", f"/badges/octo/{k}/train.svg"
    ),
    ("GET", "/badges/{owner}/{repo}/{workflow}.json"): lambda fx, k: Call(
        "GET", f"/badges/octo/{k}/train.json"
    ),
    ("GET", "/badges/{owner}/{repo}/{workflow}/{job}/{metric}.svg"): lambda fx, k: Call(
        "GET", f"/badges/octo/{k}/train/fit/acc.svg"
    ),
    ("GET", "/badges/{owner}/{repo}/{workflow}/{job}/{metric}.json"): lambda fx, k: Call(
        "GET", f"/badges/octo/{k}/train/fit/acc.json"
    ),
    ("GET", "/badges/{owner}/{repo}/{workflow}/{job}/{metric}/trend.svg"): lambda fx, k: Call(
        "GET", f"/badges/octo/{k}/train/fit/acc/trend.svg"
    ),
    ("GET", "/api/v1/repos/{owner}/{repo}/metrics"): lambda fx, k: Call(
        "GET", f"/api/v1/repos/octo/{k}/metrics?workflow=train&job=fit&metric=acc"
    ),
    ("GET", "/repos/{owner}/{repo}/metrics/history"): lambda fx, k: Call(
        "GET", f"/repos/octo/{k}/metrics/history?workflow=train&job=fit&metric=acc"
    ),
    ("GET", "/api/v1/repos/{owner}/{repo}/secrets"): lambda fx, k: Call(
        "GET", f"/api/v1/repos/octo/{k}/secrets"
    ),
    ("PUT", "/api/v1/repos/{owner}/{repo}/secrets/{name}"): lambda fx, k: Call(
        "PUT", f"/api/v1/repos/octo/{k}/secrets/POLICY_TEST", {"value": "policy test value"}
    ),
    # Deleting a secret that is not there is a 404: the route let the caller through.
    ("DELETE", "/api/v1/repos/{owner}/{repo}/secrets/{name}"): lambda fx, k: Call(
        "DELETE", f"/api/v1/repos/octo/{k}/secrets/NOT_THERE", also_allowed=(404,)
    ),
    ("GET", "/api/v1/secrets"): lambda fx, k: Call("GET", "/api/v1/secrets"),
    ("PUT", "/api/v1/secrets/{name}"): lambda fx, k: Call(
        "PUT", "/api/v1/secrets/POLICY_TEST", {"value": "policy test value"}
    ),
    ("DELETE", "/api/v1/secrets/{name}"): lambda fx, k: Call(
        "DELETE", "/api/v1/secrets/NOT_THERE", also_allowed=(404,)
    ),
}

# Routes some requests reach only through others (OAuth callbacks, static files) and the
# expected answer is the handler's own: listed with what a bare call gets.
EXTRA_REQUESTS: dict[tuple[str, str], Builder] = {}


def expected(policy: str, role: str, kind: str) -> str:
    """ "ok", or the status a caller of `role` must get on a `kind` repository's route."""
    private = kind == "private"
    if policy in ("public", "listing"):
        return "ok"
    if policy in ("github-signature", "hook-token", "runner-token", "job-token"):
        return "401"  # a person's token is no machine credential
    if policy == "runner-registration":
        return "401"  # the body's registration token is unknown
    if policy.startswith("signed-in"):
        return "401" if role == "anonymous" else "ok"
    if policy == "server-admin":
        return {"anonymous": "401", "admin": "ok"}.get(role, "403")
    readers = ("reader", "writer", "admin")
    can_read = role in readers or not private
    if policy.startswith("repo:read"):
        return "ok" if can_read else "404"
    if policy.startswith("repo:write"):
        if role in ("writer", "admin"):
            return "ok"
        if role == "anonymous":
            return "401" if not private or "named in body" in policy else "404"
        return "403" if can_read else "404"
    if policy.startswith("repo:admin"):
        if role == "admin":
            return "ok"
        if role == "anonymous":
            return "404" if private else "401"
        return "403" if can_read else "404"
    raise AssertionError(f"no expectation for policy {policy!r}")


def all_routes(app) -> list[Any]:
    """Every route as it is served (routers included with their prefixes)."""
    return [context.route for context in iter_route_contexts(app.routes)]


def api_routes(app) -> list[APIRoute]:
    return [r for r in all_routes(app) if isinstance(r, APIRoute)]


def test_every_route_declares_exactly_one_policy():
    settings = test_settings("sqlite:///unused.db", "redis://127.0.0.1:1/0")
    app = create_app(settings)
    missing, several, unknown = [], [], []
    for route in all_routes(app):
        if isinstance(route, APIRoute):
            found = route_policies(route)
            if not found:
                missing.append(route.path)
            elif len(found) > 1:
                several.append((route.path, found))
        elif isinstance(route, Mount | Route) and not any(
            route.path == p or route.path.startswith(p + "/") for p in PUBLIC_MOUNTS
        ):
            unknown.append(route.path)
    assert missing == []
    assert several == []
    assert unknown == []


def test_every_route_has_a_request_here():
    settings = test_settings("sqlite:///unused.db", "redis://127.0.0.1:1/0")
    app = create_app(settings)
    routes = {(m, r.path) for r in api_routes(app) for m in r.methods if m != "HEAD"}
    assert sorted(routes - set(REQUESTS) - set(EXTRA_REQUESTS)) == []
    assert sorted(set(REQUESTS) - routes) == []


def as_role(fx: Fixture, role: str) -> dict[str, str]:
    return bearer(fx.tokens[role]) if role != "anonymous" else {}


async def send(fx: Fixture, call: Call, role: str) -> httpx.Response:
    headers = as_role(fx, role)
    if call.body is None:
        return await fx.client.request(call.method, call.url, headers=headers)
    if isinstance(call.body, str):
        return await fx.client.request(call.method, call.url, content=call.body, headers=headers)
    if call.url in ("/login", "/logout") or call.url.startswith(("/account", "/runners/")):
        return await fx.client.request(call.method, call.url, data=call.body, headers=headers)
    return await fx.client.request(
        call.method, call.url, content=json.dumps(call.body), headers=headers
    )


REPO_SCOPED = ("repo:",)


@pytest.mark.parametrize("role", ROLES)
async def test_each_route_answers_each_caller_as_its_policy_says(world, role):
    fx: Fixture = world
    wrong = []
    for route in api_routes(fx.client.app):
        (found,) = route_policies(route)
        kinds = ("public", "private") if found.name.startswith(REPO_SCOPED) else ("public",)
        for method in sorted(route.methods - {"HEAD"}):
            for kind in kinds:
                call = REQUESTS[(method, route.path)](fx, kind)
                response = await send(fx, call, role)
                want = expected(found.name, role, kind)
                got = response.status_code
                ok = got < 400 or got in call.also_allowed
                if (want == "ok" and not ok) or (want != "ok" and str(got) != want):
                    wrong.append(
                        f"{role} {method} {call.url} ({found.name}): want {want}, got {got} "
                        f"{response.text[:120]}"
                    )
    assert wrong == []


async def test_listings_show_only_what_the_caller_may_read(world):
    fx: Fixture = world
    private_run = fx.runs["private"]
    for role in ROLES:
        runs = (await fx.client.get("/api/v1/runs", headers=as_role(fx, role))).json()
        page = (await fx.client.get("/", headers=as_role(fx, role))).text
        seen = {r["run"]["id"] for r in runs}
        may = role in ("reader", "writer", "admin")
        assert (private_run in seen) is may, role
        assert (f'href="/runs/{private_run}"' in page) is may, role
        assert fx.runs["public"] in seen


async def test_a_private_run_and_its_logs_look_like_nothing_to_strangers(world):
    fx: Fixture = world
    run_id, job_id = fx.runs["private"], fx.jobs["private"]
    missing = await fx.client.get("/api/v1/runs/2147483000", headers=as_role(fx, "outsider"))
    hidden = await fx.client.get(f"/api/v1/runs/{run_id}", headers=as_role(fx, "outsider"))
    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json())
    artifact = await fx.client.get(f"/api/v1/jobs/{job_id}/artifacts/model.txt")
    assert artifact.status_code == 404
    assert b"weights" not in artifact.content


async def test_a_cancel_authorises_the_run_it_names(world):
    """The signed body of one run's cancel once cancelled another: now the token's permission
    on the named run decides, and a reader's token cancels nothing anywhere."""
    fx: Fixture = world
    for kind in ("public", "private"):
        refused = await fx.client.post(
            f"/api/v1/runs/{fx.runs[kind]}/cancel", json={}, headers=as_role(fx, "reader")
        )
        assert refused.status_code == 403
    detail = await fx.client.get(f"/api/v1/runs/{fx.runs['private']}", headers=as_role(fx, "admin"))
    assert detail.json()["jobs"][0]["job"]["state"] == "pending"
    done = await fx.client.post(
        f"/api/v1/runs/{fx.runs['private']}/cancel", json={}, headers=as_role(fx, "writer")
    )
    assert done.json()["reason"] == "stopped by writer"


async def test_a_read_scoped_token_cannot_write_even_for_an_admin(world):
    fx: Fixture = world
    sessions = fx.client.app.state.context.sessions
    admin = await accounts.find_user(sessions, "admin")
    read_only = await make_token(sessions, admin, scope="read")
    response = await fx.client.post(
        f"/api/v1/runs/{fx.runs['public']}/cancel", json={}, headers=bearer(read_only)
    )
    outbox = await fx.client.get("/api/v1/outbox", headers=bearer(read_only))
    assert (response.status_code, outbox.status_code) == (403, 403)


async def test_revoked_expired_and_unknown_tokens_get_401(world):
    fx: Fixture = world
    sessions = fx.client.app.state.context.sessions
    admin = await accounts.find_user(sessions, "admin")
    token = await make_token(sessions, admin)
    listed = (await fx.client.get("/api/v1/tokens", headers=bearer(token))).json()
    newest = max(t["id"] for t in listed)
    assert all("token_hash" not in t and "token" not in t for t in listed)
    gone = await fx.client.delete(f"/api/v1/tokens/{newest}", headers=bearer(token))
    assert gone.status_code == 200
    for secret in (token, "labci_pat_unknown", "not-even-a-token"):
        response = await fx.client.get("/api/v1/runs", headers=bearer(secret))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tokens", {"name": "a\u0000b", "scope": "read"}),
        ("POST", "/api/v1/runs/1/cancel", {"reason": "\u0000"}),
        ("POST", "/api/v1/runners/register", {"registration_token": "\u0000", "name": "r"}),
        ("GET", "/api/v1/runs?commit=ab%00c", None),
        ("GET", "/badges/octo%00/x/train.svg", None),
        ("GET", "/api/v1/runs/99999999999999999999999", None),
        ("GET", "/runs/-1", None),
        ("GET", "/api/v1/runs?limit=-1", None),
        ("GET", "/api/v1/runs?limit=100000000000000000000000000", None),
        ("GET", "/api/v1/runner/jobs/1?attempt=99999999999999999999999", None),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_odd_input_is_a_4xx_never_a_5xx(world, method, path, body):
    """NUL characters (PostgreSQL cannot store them), integers past 2**63 and negative
    limits once answered 500; they are the caller's mistake, and a 4xx says so."""
    fx: Fixture = world
    response = await fx.client.request(
        method, path, json=body, headers=as_role(fx, "admin") | {"x": "y"}
    )
    assert response.status_code < 500, response.text
    if "limit" in path:
        assert response.status_code == 200
    else:
        assert 400 <= response.status_code < 500
