"""labci as a GitHub App, against the GitHub stand-in: installation tokens and check runs.

The stand-in verifies the App's JWT with the public key of a key pair made here, and checks
every request labci sends against GitHub's OpenAPI description (the `github` fixture fails
the test on any violation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_standin import Recorded, Standin, create_bare_repo
from labci_server.db.models import Repository
from labci_server.errors import ConfigError, ForgeRejected, ForgeUnavailable
from labci_server.forge.base import CheckRunMessage, StatusMessage
from labci_server.forge.github import GitHubForge
from labci_server.forge.github_app import REFRESH_BEFORE_EXPIRY_S, InstallationTokens
from labci_server.forge.github_checks import MAX_CHECK_SUMMARY_CHARS

APP_ID = 31337
INSTALLATION = 77
TOKENS_PATH = f"/app/installations/{INSTALLATION}/access_tokens"
NAME = "labci/train/cifar10"
EXTERNAL_ID = "job-group:123:labci/train/cifar10"
CHECK_RUNS = "/repos/octo/exp/check-runs"


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="session")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Clock:
    """The time InstallationTokens reads (the stand-in keeps the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    forge: GitHubForge
    tokens: InstallationTokens
    repo: Repository
    standin: Standin
    head: str
    clock: Clock
    http: httpx.AsyncClient
    url: str

    def mints(self) -> list[Recorded]:
        return [r for r in self.standin.requests if r.path.startswith("/app/")]

    def sent(self) -> list[tuple[str, str, int | None]]:
        """(method, path, status) of every request, check run ids shown as {id}."""
        return [
            (
                r.method,
                CHECK_RUNS + "/{id}" if r.path.startswith(CHECK_RUNS + "/") else r.path,
                r.status,
            )
            for r in self.standin.requests
        ]

    def runs(self) -> list[dict]:
        return self.standin.check_runs("octo", "exp", self.head)

    def message(self, **changes: object) -> CheckRunMessage:
        base = CheckRunMessage(
            head_sha=self.head,
            name=NAME,
            external_id=EXTERNAL_ID,
            status="queued",
            conclusion=None,
            title="Waiting for a runner",
            summary="Queued on a `gpu` runner.",
            details_url="https://labci.example.org/runs/123",
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def tokens_with(self, key: rsa.RSAPrivateKey, app_id: int = APP_ID) -> InstallationTokens:
        return InstallationTokens(
            self.http, api_url=self.url, app_id=str(app_id), private_key=private_pem(key)
        )


@pytest.fixture
async def subject(github, app_key: rsa.RSAPrivateKey) -> AsyncIterator[Subject]:
    bare = create_bare_repo(github.repos_root, "octo", "exp")
    head = bare.commit({"README.md": "# exp\n"}, "c0")
    create_bare_repo(github.repos_root, "octo", "other").commit({"a.txt": "a\n"}, "c0")
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    github.standin.register_app(APP_ID, public)
    github.standin.install_app(APP_ID, INSTALLATION, ["octo/exp"])
    row = Repository(
        provider="github",
        full_name="octo/exp",
        clone_url=bare.clone_url,
        installation_id=INSTALLATION,
    )
    clock = Clock()
    async with httpx.AsyncClient() as http:
        tokens = InstallationTokens(
            http,
            api_url=github.url,
            app_id=str(APP_ID),
            private_key=private_pem(app_key),
            clock=clock,
        )
        forge = GitHubForge(http, api_url=github.url, token=None, app=tokens)
        yield Subject(forge, tokens, row, github.standin, head, clock, http, github.url)


# -- installation tokens -------------------------------------------------------------------


async def test_a_token_is_minted_with_the_apps_jwt_then_reused(
    subject: Subject, app_key: rsa.RSAPrivateKey
) -> None:
    first = await subject.tokens.token(INSTALLATION)
    second = await subject.tokens.token(INSTALLATION)
    assert second == first
    (mint,) = subject.mints()
    assert (mint.method, mint.status, mint.body) == ("POST", 201, b"")
    scheme, _, assertion = mint.headers["authorization"].partition(" ")
    claims = jwt.decode(assertion, app_key.public_key(), algorithms=["RS256"])
    assert (scheme.lower(), claims["iss"], claims["exp"] - claims["iat"]) == (
        "bearer",
        "31337",
        600,
    )
    assert abs(claims["iat"] - (mint.received_at - 60)) < 5  # gidgethub backdates by 60 s


async def test_every_repository_request_carries_the_installation_token(
    subject: Subject,
) -> None:
    sha = await subject.forge.resolve_ref(subject.repo, "main")
    message = StatusMessage(subject.head, "labci/train", "success", "done", None)
    await subject.forge.post_status(subject.repo, message)
    assert await subject.forge.has_status(subject.repo, message)
    token = await subject.tokens.token(INSTALLATION)
    assert sha == subject.head
    assert [(r.method, r.path, r.token) for r in subject.standin.requests[1:]] == [
        ("GET", "/repos/octo/exp/commits/main", token),
        ("POST", f"/repos/octo/exp/statuses/{subject.head}", token),
        ("GET", f"/repos/octo/exp/commits/{subject.head}/statuses", token),
    ]
    assert len(subject.mints()) == 1
    assert subject.standin.violations == []


async def test_a_token_is_replaced_five_minutes_before_it_expires(subject: Subject) -> None:
    first = await subject.tokens.token(INSTALLATION)
    grant = subject.standin.apps.grant(first)
    assert grant is not None
    subject.clock.now = grant.expires_at_s - REFRESH_BEFORE_EXPIRY_S - 1
    assert await subject.tokens.token(INSTALLATION) == first
    assert len(subject.mints()) == 1
    subject.clock.now = grant.expires_at_s - REFRESH_BEFORE_EXPIRY_S
    second = await subject.tokens.token(INSTALLATION)
    assert second != first
    assert [r.status for r in subject.mints()] == [201, 201]


async def test_concurrent_callers_share_one_token_request(subject: Subject) -> None:
    subject.standin.latency = 0.2  # every caller arrives while the first request is out
    tokens = await asyncio.gather(*(subject.tokens.token(INSTALLATION) for _ in range(10)))
    assert len(set(tokens)) == 1
    assert len(subject.mints()) == 1


async def test_a_key_github_does_not_know_is_a_clear_rejection(
    subject: Subject, other_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(ForgeRejected) as caught:
        await subject.tokens_with(other_key).token(INSTALLATION)
    assert (caught.value.status, str(caught.value)) == (
        401,
        "GitHub App 31337, installation 77: no access token, GitHub could not verify the "
        "app's JWT (wrong private key or app id?); GitHub answered 401: A JSON web token "
        "could not be decoded",
    )


async def test_an_unknown_installation_is_a_clear_rejection(subject: Subject) -> None:
    with pytest.raises(ForgeRejected) as caught:
        await subject.tokens.token(78)
    assert (caught.value.status, str(caught.value)) == (
        404,
        "GitHub App 31337, installation 78: no access token, GitHub knows no such "
        "installation of the app (uninstalled?); GitHub answered 404: Not Found",
    )


async def test_a_private_key_that_cannot_sign_is_a_config_error() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError) as caught:
            InstallationTokens(http, api_url="http://github.test", app_id="1", private_key="nope")
    assert str(caught.value).startswith("LABCI_GITHUB_PRIVATE_KEY cannot sign a GitHub App JWT: ")
    assert "nope" not in str(caught.value)


@pytest.mark.parametrize("status", [502, 429])
async def test_an_outage_while_minting_is_worth_a_retry(subject: Subject, status: int) -> None:
    subject.standin.fail_next(1, status, method="POST")
    with pytest.raises(
        ForgeUnavailable, match=f"installation 77: POST .*: GitHub answered {status}"
    ):
        await subject.tokens.token(INSTALLATION)
    assert await subject.tokens.token(INSTALLATION)
    assert [r.status for r in subject.mints()] == [status, 201]


async def test_a_repository_without_an_installation_is_rejected_unsent(
    subject: Subject,
) -> None:
    repo = Repository(provider="github", full_name="octo/exp", clone_url="x")
    with pytest.raises(ForgeRejected) as caught:
        await subject.forge.resolve_ref(repo, "main")
    assert (caught.value.status, str(caught.value)) == (
        404,
        "octo/exp: labci has not seen an installation of its GitHub App for this repository "
        "yet; install the App on it (or redeliver its installation webhook)",
    )
    assert subject.standin.requests == []


async def test_a_token_refused_before_its_time_is_minted_anew(subject: Subject) -> None:
    first = await subject.tokens.token(INSTALLATION)
    subject.standin.expire_installation_tokens()  # as if revoked
    with pytest.raises(ForgeUnavailable, match="a new one is minted on retry"):
        await subject.forge.resolve_ref(subject.repo, "main")
    assert await subject.forge.resolve_ref(subject.repo, "main") == subject.head
    assert [r.status for r in subject.standin.requests] == [201, 401, 201, 200]
    assert subject.standin.requests[-1].token not in (None, first)


async def test_a_repository_outside_the_installation_is_not_found(subject: Subject) -> None:
    other = Repository(
        provider="github", full_name="octo/other", clone_url="x", installation_id=INSTALLATION
    )
    message = StatusMessage(subject.head, "labci/train", "success", "done", None)
    with pytest.raises(ForgeRejected) as caught:
        await subject.forge.post_status(other, message)
    assert (caught.value.status, str(caught.value)) == (
        404,
        "POST /repos/{owner}/{repo}/statuses/{sha}: GitHub answered 404: Not Found",
    )


# -- check runs ----------------------------------------------------------------------------


async def test_an_upsert_creates_then_updates_the_same_check_run(subject: Subject) -> None:
    first = await subject.forge.upsert_check_run(subject.repo, subject.message())
    running = subject.message(status="in_progress", title="Training", summary="epoch 1/3")
    assert await subject.forge.upsert_check_run(subject.repo, running) == first
    done = subject.message(
        status="completed", conclusion="success", title="acc +0.4 %", summary="| acc | 0.91 |"
    )
    assert await subject.forge.upsert_check_run(subject.repo, done) == first
    (run,) = subject.runs()
    assert {k: run[k] for k in run if k not in ("started_at", "completed_at")} == {
        "id": int(first),
        "head_sha": subject.head,
        "name": NAME,
        "app_id": APP_ID,
        "external_id": EXTERNAL_ID,
        "status": "completed",
        "conclusion": "success",
        "title": "acc +0.4 %",
        "summary": "| acc | 0.91 |",
        "text": None,
        "details_url": "https://labci.example.org/runs/123",
    }
    assert run["completed_at"] is not None
    listing = f"/repos/octo/exp/commits/{subject.head}/check-runs"
    assert subject.sent() == [
        ("POST", TOKENS_PATH, 201),
        ("GET", listing, 200),
        ("POST", CHECK_RUNS, 201),
        ("GET", listing, 200),
        ("PATCH", CHECK_RUNS + "/{id}", 200),
        ("GET", listing, 200),
        ("PATCH", CHECK_RUNS + "/{id}", 200),
    ]
    assert subject.standin.requests[1].query == {
        "check_name": NAME,
        "filter": "all",
        "app_id": "31337",
        "per_page": "100",
    }
    assert subject.standin.requests[2].json == {
        "name": NAME,
        "external_id": EXTERNAL_ID,
        "status": "queued",
        "output": {"title": "Waiting for a runner", "summary": "Queued on a `gpu` runner."},
        "details_url": "https://labci.example.org/runs/123",
        "head_sha": subject.head,
    }
    assert subject.standin.requests[-1].json == {
        "name": NAME,
        "external_id": EXTERNAL_ID,
        "status": "completed",
        "conclusion": "success",
        "output": {"title": "acc +0.4 %", "summary": "| acc | 0.91 |"},
        "details_url": "https://labci.example.org/runs/123",
    }
    assert subject.standin.violations == []


async def test_an_unchanged_check_run_spends_no_mutation(subject: Subject) -> None:
    done = subject.message(status="completed", conclusion="failure", details_url=None)
    first = await subject.forge.upsert_check_run(subject.repo, done)
    subject.standin.requests.clear()
    assert await subject.forge.upsert_check_run(subject.repo, done) == first
    assert [(r.method, r.status) for r in subject.standin.requests] == [("GET", 200)]


async def test_a_completed_check_run_that_must_change_gets_a_new_one(subject: Subject) -> None:
    failed = subject.message(status="completed", conclusion="failure")
    first = await subject.forge.upsert_check_run(subject.repo, failed)
    rerun = await subject.forge.upsert_check_run(subject.repo, subject.message())
    passed = subject.message(status="completed", conclusion="success")
    assert await subject.forge.upsert_check_run(subject.repo, passed) == rerun
    assert rerun != first
    assert [(r["id"], r["status"], r["conclusion"]) for r in subject.runs()] == [
        (int(first), "completed", "failure"),
        (int(rerun), "completed", "success"),
    ]
    # The summary of a completed run can still change in place.
    reworded = replace(passed, summary="| acc | 0.92 |")
    assert await subject.forge.upsert_check_run(subject.repo, reworded) == rerun
    assert [r["summary"] for r in subject.runs()] == ["Queued on a `gpu` runner."] + [
        "| acc | 0.92 |"
    ]


async def test_other_apps_and_other_checks_are_left_alone(subject: Subject) -> None:
    foreign = subject.standin.add_check_run(
        "octo", "exp", subject.head, NAME, app_id=999, external_id=EXTERNAL_ID
    )
    sibling = await subject.forge.upsert_check_run(
        subject.repo, subject.message(external_id="job-group:124:labci/train/cifar10")
    )
    mine = await subject.forge.upsert_check_run(subject.repo, subject.message())
    assert len({str(foreign), sibling, mine}) == 3
    assert [(r["id"], r["app_id"], r["status"]) for r in subject.runs()] == [
        (foreign, 999, "completed"),
        (int(sibling), APP_ID, "queued"),
        (int(mine), APP_ID, "queued"),
    ]


async def test_the_listing_is_read_to_its_last_page(subject: Subject) -> None:
    for i in range(120):
        subject.standin.add_check_run(
            "octo", "exp", subject.head, NAME, app_id=APP_ID, external_id=f"old:{i}"
        )
    oldest = subject.standin.add_check_run(
        "octo", "exp", subject.head, NAME, app_id=APP_ID, external_id=EXTERNAL_ID
    )
    subject.standin.add_check_run(
        "octo", "exp", subject.head, NAME, app_id=APP_ID, external_id="newest:0"
    )
    done = subject.message(status="completed", conclusion="success")
    assert await subject.forge.upsert_check_run(subject.repo, done) == str(oldest)
    pages = [r.query for r in subject.standin.requests if r.method == "GET"]
    assert pages == [
        {"check_name": NAME, "filter": "all", "app_id": "31337", "per_page": "100"},
        {"check_name": NAME, "filter": "all", "app_id": "31337", "per_page": "100", "page": "2"},
    ]


async def test_a_summary_over_githubs_limit_is_truncated_with_a_note(subject: Subject) -> None:
    line = "| metric | 0.91 | 0.92 |\n"
    summary = line * 3000  # 75,000 characters
    await subject.forge.upsert_check_run(subject.repo, subject.message(summary=summary))
    (run,) = subject.runs()
    note = "\n\n*… truncated: the summary was 75,000 characters, over GitHub's limit of 65,535.*"
    assert run["summary"].endswith(note)
    kept = run["summary"][: -len(note)]
    assert len(run["summary"]) <= MAX_CHECK_SUMMARY_CHARS
    assert summary.startswith(kept)
    assert kept.endswith("|")  # cut at a line break
    exact = "x" * MAX_CHECK_SUMMARY_CHARS
    await subject.forge.upsert_check_run(subject.repo, subject.message(summary=exact))
    assert subject.runs()[0]["summary"] == exact
    assert subject.standin.violations == []


async def test_a_lost_answer_to_the_create_is_not_a_second_check_run(subject: Subject) -> None:
    subject.standin.crash_after_commit_next(1, on=("check_run",))
    with pytest.raises(ForgeUnavailable):
        await subject.forge.upsert_check_run(subject.repo, subject.message())
    retried = await subject.forge.upsert_check_run(subject.repo, subject.message())
    assert [str(r["id"]) for r in subject.runs()] == [retried]


async def test_check_runs_without_an_app_are_rejected_unsent(github, subject: Subject) -> None:
    forge = GitHubForge(subject.http, api_url=github.url, token="test-token")
    with pytest.raises(ForgeRejected) as caught:
        await forge.upsert_check_run(subject.repo, subject.message())
    assert (caught.value.status, str(caught.value)) == (
        422,
        "check run 'labci/train/cifar10' for octo/exp: check runs need labci to be a GitHub "
        "App (set LABCI_GITHUB_APP_ID and LABCI_GITHUB_PRIVATE_KEY)",
    )
    assert subject.standin.requests == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (
            {"status": "completed"},
            "a conclusion goes with status 'completed', and only with it (status 'completed', "
            "conclusion None)",
        ),
        (
            {"status": "in_progress", "conclusion": "success"},
            "a conclusion goes with status 'completed', and only with it (status "
            "'in_progress', conclusion 'success')",
        ),
        (
            {"status": "waiting"},
            "status 'waiting' is not one of queued, in_progress, completed",
        ),
        (
            {"status": "completed", "conclusion": "stale"},
            "conclusion 'stale' is not one of success, failure, neutral, cancelled, "
            "timed_out, action_required, skipped",
        ),
        ({"name": " "}, "the name is blank"),
    ],
    ids=["completed-without-conclusion", "conclusion-too-early", "waiting", "stale", "blank"],
)
async def test_a_check_run_github_would_refuse_is_rejected_unsent(
    subject: Subject, changes: dict, reason: str
) -> None:
    message = subject.message(**changes)
    with pytest.raises(ForgeRejected) as caught:
        await subject.forge.upsert_check_run(subject.repo, message)
    where = f"check run {message.name!r} on {subject.head[:7]}"
    assert (caught.value.status, str(caught.value)) == (422, f"{where}: {reason}")
    assert subject.standin.requests == []
