"""The stand-in's GitHub App flow and check runs: apps/create-installation-access-token,
checks/create, checks/update and checks/list-for-ref.

Every reply is checked against the response schema of its operation in @octokit/openapi, and
every request against the request schema (``standin.violations``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gidgethub.apps
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_standin import OpenAPIChecker, Standin, check_run_payload, create_bare_repo

from ._support import API, Repo

APP_ID = 4711
INSTALLATION = 9
MINT = f"/app/installations/{INSTALLATION}/access_tokens"
RUNS = "/repos/acme/widgets/check-runs"
DOC = "https://docs.github.com/rest/checks/runs"
TOKENS_DOC = "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app"


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def app(standin: Standin, app_key: rsa.RSAPrivateKey) -> Standin:
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin.register_app(APP_ID, public.decode())
    standin.install_app(APP_ID, INSTALLATION, ["acme/widgets"])
    return standin


Call = Callable[..., Any]


@pytest.fixture
def call(client: httpx.AsyncClient, checker: OpenAPIChecker) -> Call:
    async def call(
        method: str, url: str, body: Any = None, *, auth: str | None = None, **params: Any
    ) -> httpx.Response:
        """The reply, after checking that its body matches GitHub's schema for that status
        (GitHub's error shape for the errors the operation does not document)."""
        headers = {"Authorization": auth} if auth else None
        r = await client.request(method, url, json=body, params=params or None, headers=headers)
        errors = checker.response_errors(method, url, r.status_code, r.json())
        if errors == [
            f"{method} {checker.match(method, url)[0]}: status {r.status_code} is not documented"
        ]:
            assert r.status_code >= 400
            assert sorted(r.json()) == ["documentation_url", "message", "status"]
        else:
            assert errors == []
        return r

    return call


def signed(key: rsa.RSAPrivateKey, *, iat: float | None = None, exp: float | None = None) -> str:
    """An App JWT: gidgethub's, or one with the given times."""
    if iat is None and exp is None:
        return "Bearer " + gidgethub.apps.get_jwt(app_id=str(APP_ID), private_key=pem(key))
    claims = {"iat": int(iat or time.time()), "exp": int(exp or time.time()), "iss": str(APP_ID)}
    return "Bearer " + jwt.encode(claims, pem(key), algorithm="RS256")


async def installation_token(call: Call, key: rsa.RSAPrivateKey) -> str:
    r = await call("POST", MINT, auth=signed(key))
    assert r.status_code == 201
    return f"token {r.json()['token']}"


def check_run(repo: Repo, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "labci/train",
        "head_sha": repo.head,
        "external_id": "job-group:1:labci/train",
        "status": "in_progress",
        "output": {"title": "Training", "summary": "epoch 1"},
    }
    return body | fields


# -- the App's JWT and installation tokens -------------------------------------------------


async def test_a_jwt_signed_by_the_app_mints_a_token_for_its_repositories(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, repo: Repo
) -> None:
    before = time.time()
    r = await call("POST", MINT, auth=signed(app_key))
    assert r.status_code == 201
    body = r.json()
    assert body["token"].startswith("ghs_")
    assert len(body["token"]) == 40
    assert body["repository_selection"] == "selected"
    assert body["permissions"]["checks"] == "write"
    grant = app.apps.grant(body["token"])
    assert grant is not None
    assert (grant.installation_id, grant.app_id) == (INSTALLATION, APP_ID)
    assert before + 3600 - 1 <= grant.expires_at_s <= time.time() + 3600
    assert body["expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(grant.expires_at_s)
    )
    listed = await call(
        "GET", f"/repos/acme/widgets/commits/{repo.head}/check-runs", auth=f"Bearer {body['token']}"
    )
    assert listed.json() == {"total_count": 0, "check_runs": []}
    assert app.violations == []


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (lambda k, o: signed(o), "A JSON web token could not be decoded"),
        (
            lambda k, o: signed(k, iat=time.time() - 1200, exp=time.time() - 600),
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires",
        ),
        (
            lambda k, o: signed(k, iat=time.time(), exp=time.time() + 3600),
            "'Expiration time' claim ('exp') is too far in the future",
        ),
        (
            lambda k, o: signed(k, iat=time.time() + 300, exp=time.time() + 500),
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued",
        ),
        (lambda k, o: "token ghs_standin_test_token", "A JSON web token could not be decoded"),
        (lambda k, o: "Bearer not.a.jwt", "A JSON web token could not be decoded"),
        (lambda k, o: None, "Requires authentication"),
    ],
    ids=["other-key", "expired", "exp-too-far", "iat-in-future", "static-token", "garbage", "none"],
)
async def test_a_jwt_github_would_refuse_gets_401(
    app: Standin,
    client: httpx.AsyncClient,
    checker: OpenAPIChecker,
    app_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    auth: Callable[[rsa.RSAPrivateKey, rsa.RSAPrivateKey], str | None],
    message: str,
) -> None:
    header = auth(app_key, other_key)
    headers = {"Authorization": header} if header else {"Authorization": ""}
    r = await client.post(MINT, headers=headers)
    assert (r.status_code, r.json()) == (
        401,
        {"message": message, "documentation_url": TOKENS_DOC, "status": "401"},
    )
    assert checker.response_errors("POST", MINT, 401, r.json()) == []
    assert [(q.path, q.status) for q in app.requests] == [(MINT, 401)]


async def test_an_installation_of_another_app_or_none_is_not_found(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    public = other_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app.register_app(4712, public)
    app.install_app(4712, 10)
    unknown = await call("POST", "/app/installations/11/access_tokens", auth=signed(app_key))
    foreign = await call("POST", "/app/installations/10/access_tokens", auth=signed(app_key))
    assert [unknown.status_code, foreign.status_code] == [404, 404]


async def test_an_installation_token_sees_only_its_repositories_until_it_expires(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, repo: Repo
) -> None:
    gadgets = create_bare_repo(repo.root, "acme", "gadgets")
    other_head = gadgets.commit({"a.txt": "a\n"}, "c0")
    token = await installation_token(call, app_key)
    other_url = f"/repos/acme/gadgets/commits/{other_head}/check-runs"
    other = await call("GET", other_url, auth=token)
    other_static = await call("GET", other_url)  # the client's static token sees it
    mine = await call("GET", f"/repos/acme/widgets/commits/{repo.head}/check-runs", auth=token)
    app.expire_installation_tokens()
    expired = await call("GET", f"/repos/acme/widgets/commits/{repo.head}/check-runs", auth=token)
    statuses = [r.status_code for r in (other, other_static, mine, expired)]
    assert statuses == [404, 200, 200, 401]
    assert expired.json()["message"] == "Bad credentials"


# -- check runs ----------------------------------------------------------------------------


async def test_create_update_and_list_a_check_run(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, repo: Repo
) -> None:
    app.open_pull_request("acme", "widgets", 3, head_ref="main", base_ref="feature/x")
    token = await installation_token(call, app_key)
    created = await call("POST", RUNS, check_run(repo), auth=token)
    assert created.status_code == 201
    run = created.json()
    url = f"{API}/repos/acme/widgets/check-runs/{run['id']}"
    assert created.headers["location"] == url
    assert {k: run[k] for k in ("url", "html_url", "details_url", "status", "conclusion")} == {
        "url": url,
        "html_url": f"{API}/acme/widgets/runs/{run['id']}",
        "details_url": "https://labci.example.com",  # the App's homepage when none is given
        "status": "in_progress",
        "conclusion": None,
    }
    assert (run["app"]["id"], run["app"]["slug"], run["completed_at"]) == (APP_ID, "labci", None)
    assert [(p["number"], p["head"]["sha"], p["base"]["sha"]) for p in run["pull_requests"]] == [
        (3, repo.head, repo.feature)
    ]
    done = {"conclusion": "success", "output": {"title": "Done", "summary": "acc 0.91"}}
    updated = await call("PATCH", f"{RUNS}/{run['id']}", done, auth=token)
    assert updated.status_code == 200
    assert (updated.json()["status"], updated.json()["conclusion"]) == ("completed", "success")
    assert updated.json()["completed_at"] is not None
    listed = await call("GET", "/repos/acme/widgets/commits/main/check-runs", auth=token)
    assert listed.json()["total_count"] == 1
    assert listed.json()["check_runs"][0]["output"]["summary"] == "acc 0.91"
    (stored,) = app.check_runs("acme", "widgets", repo.head)
    assert (stored["id"], stored["title"], stored["app_id"]) == (run["id"], "Done", APP_ID)
    stored["title"] = "changed"
    assert app.check_runs("acme", "widgets", repo.head)[0]["title"] == "Done"
    assert app.violations == []


async def test_a_completed_check_run_keeps_its_status_and_conclusion(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, repo: Repo
) -> None:
    token = await installation_token(call, app_key)
    body = check_run(repo, status="completed", conclusion="failure")
    run = (await call("POST", RUNS, body, auth=token)).json()
    again = {"status": "queued", "output": {"title": "Again", "summary": "re-run"}}
    r = await call("PATCH", f"{RUNS}/{run['id']}", again, auth=token)
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["conclusion"], r.json()["output"]["title"]) == (
        "completed",
        "failure",
        "Again",
    )


async def test_only_an_app_writes_check_runs_and_only_its_own(
    app: Standin,
    call: Call,
    app_key: rsa.RSAPrivateKey,
    repo: Repo,
) -> None:
    static = await call("POST", RUNS, check_run(repo))  # the client's static token
    foreign = app.add_check_run("acme", "widgets", repo.head, "lint", app_id=999)
    token = await installation_token(call, app_key)
    edit = {"output": {"title": "mine now", "summary": "x"}}
    theirs = await call("PATCH", f"{RUNS}/{foreign}", edit, auth=token)
    assert (static.status_code, static.json()["message"]) == (
        403,
        "You must authenticate via a GitHub App.",
    )
    assert (theirs.status_code, theirs.json()["message"]) == (
        403,
        f"Invalid app_id `{APP_ID}` - check run can only be modified by the GitHub App that "
        "created it.",
    )


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"status": "completed"}, 422, "Validation Failed"),
        ({"head_sha": "0" * 40}, 422, f"No commit found for SHA: {'0' * 40}"),
        ({"output": {"title": "t", "summary": "x" * 65_536}}, 422, "Validation Failed"),
        (
            {"status": "waiting"},
            422,
            "Invalid request.\n\nFor 'properties/status', 'waiting' is not a possible value.",
        ),
    ],
    ids=["completed-without-conclusion", "unknown-sha", "summary-too-long", "status-waiting"],
)
async def test_create_refusals(
    app: Standin,
    client: httpx.AsyncClient,
    call: Call,
    app_key: rsa.RSAPrivateKey,
    repo: Repo,
    fields: dict[str, Any],
    status: int,
    message: str,
) -> None:
    token = await installation_token(call, app_key)
    r = await client.post(RUNS, json=check_run(repo, **fields), headers={"Authorization": token})
    assert (r.status_code, r.json()["message"]) == (status, message)
    assert app.check_runs("acme", "widgets", repo.head) == []


async def test_listing_filters_by_name_status_app_and_latest(
    app: Standin, client: httpx.AsyncClient, call: Call, repo: Repo
) -> None:
    ids = {
        "train-old": app.add_check_run("acme", "widgets", repo.head, "train", app_id=APP_ID),
        "train": app.add_check_run(
            "acme", "widgets", repo.head, "train", app_id=APP_ID, status="queued", conclusion=None
        ),
        "lint": app.add_check_run("acme", "widgets", repo.head, "lint", app_id=APP_ID),
        "other-app": app.add_check_run("acme", "widgets", repo.head, "train", app_id=999),
        "feature": app.add_check_run("acme", "widgets", repo.feature, "train", app_id=APP_ID),
    }
    listing = f"/repos/acme/widgets/commits/{repo.head}/check-runs"

    async def shown(**params: Any) -> list[int]:
        body = (await call("GET", listing, **params)).json()
        assert body["total_count"] == len(body["check_runs"])
        return [r["id"] for r in body["check_runs"]]

    assert await shown() == [ids["other-app"], ids["lint"], ids["train"]]
    assert await shown(filter="all") == [
        ids["other-app"],
        ids["lint"],
        ids["train"],
        ids["train-old"],
    ]
    assert await shown(filter="all", check_name="train", app_id=APP_ID) == [
        ids["train"],
        ids["train-old"],
    ]
    assert await shown(filter="all", status="completed", app_id=APP_ID) == [
        ids["lint"],
        ids["train-old"],
    ]
    assert await shown(check_name="nope") == []
    other = await call("GET", "/repos/acme/widgets/commits/feature/x/check-runs")
    assert [r["id"] for r in other.json()["check_runs"]] == [ids["feature"]]
    missing = await client.get(f"/repos/acme/widgets/commits/{'0' * 40}/check-runs")
    assert (missing.status_code, missing.json()["message"]) == (
        422,
        f"No commit found for SHA: {'0' * 40}",
    )
    assert app.violations == []


async def test_listing_pages_keep_the_filters_in_their_links(
    app: Standin, call: Call, repo: Repo
) -> None:
    ids = [
        app.add_check_run("acme", "widgets", repo.head, "train", app_id=APP_ID) for _ in range(5)
    ]
    listing = f"/repos/acme/widgets/commits/{repo.head}/check-runs"
    first = await call("GET", listing, check_name="train", filter="all", per_page=2)
    last = await call("GET", listing, check_name="train", filter="all", per_page=2, page=3)
    assert first.json()["total_count"] == 5
    assert [r["id"] for r in first.json()["check_runs"]] == [ids[4], ids[3]]
    assert [r["id"] for r in last.json()["check_runs"]] == [ids[0]]
    base = f"{API}{listing}?check_name=train&filter=all&per_page=2"
    assert first.headers["link"] == f'<{base}&page=2>; rel="next", <{base}&page=3>; rel="last"'
    assert last.headers["link"] == f'<{base}&page=2>; rel="prev", <{base}&page=1>; rel="first"'


async def test_reset_forgets_check_runs_but_keeps_the_app(
    app: Standin, call: Call, app_key: rsa.RSAPrivateKey, repo: Repo
) -> None:
    app.add_check_run("acme", "widgets", repo.head, "train", app_id=APP_ID)
    app.reset()
    assert app.check_runs("acme", "widgets", repo.head) == []
    assert (await call("POST", MINT, auth=signed(app_key))).status_code == 201


def test_check_run_payload_is_a_real_rerequested_delivery_for_our_run(repo: Repo) -> None:
    payload = check_run_payload(
        "acme",
        "widgets",
        repo.bare.clone_url,
        check_run_id=42,
        head_sha=repo.head,
        name="labci/train",
        external_id="job-group:1:labci/train",
        app_id=APP_ID,
        installation_id=INSTALLATION,
    )
    run = payload["check_run"]
    assert (payload["action"], payload["installation"]["id"]) == ("rerequested", INSTALLATION)
    assert (run["id"], run["head_sha"], run["name"], run["external_id"]) == (
        42,
        repo.head,
        "labci/train",
        "job-group:1:labci/train",
    )
    assert (run["app"]["id"], run["check_suite"]["app"]["id"]) == (APP_ID, APP_ID)
    assert run["check_suite"]["head_sha"] == repo.head
    assert payload["repository"]["full_name"] == "acme/widgets"
    assert run["output"]["title"] == "Report"  # the rest is GitHub's example, untouched
