"""The local forge's hook has a credential of its own (issue 9): `labci hook install` mints a
token, keeps only its hash, and writes it where only the repository's owner reads it;
`/webhooks/git` takes that token and nothing else (not LABCI_WEBHOOK_SECRET)."""

from __future__ import annotations

import getpass
import hashlib
import json
import stat
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helpers.gitrepo import TestRepo, hook_install, make_repo
from helpers.server import TEST_SECRET, test_settings
from labci_server.app import create_app
from labci_server.context import ServerContext
from labci_server.db.migrate import upgrade
from labci_server.db.models import Job, Repository, Run
from labci_server.db.queries.counts import count_rows
from labci_server.db.queries.events import get_event
from labci_server.db.queries.repositories import find_repository
from labci_server.forge.gitlocal_trigger import (
    TOKEN_FILE,
    branch_deleted_event,
    push_event,
    read_hook_token,
)
from labci_server.webhooks.gitlocal import sign
from labci_spec import Job as JobSpec
from labci_spec import JobInstance


@dataclass
class Subject:
    client: httpx.AsyncClient
    sc: ServerContext
    database_url: str

    async def send(self, event: dict, headers: dict[str, str]) -> httpx.Response:
        body = json.dumps(event).encode()
        return await self.client.post("/webhooks/git", content=body, headers=headers)

    async def repo(self, bare: Path) -> Repository | None:
        async with self.sc.sessions() as session:
            return await find_repository(session, provider="git", full_name=str(bare))

    async def events(self) -> int:
        async with self.sc.sessions() as session:
            return (await count_rows(session, ["events"]))["events"]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def subject(database_url, redis_url) -> AsyncIterator[Subject]:
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            yield Subject(c, app.state.context, database_url)


@pytest.fixture
def repo(tmp_path: Path) -> TestRepo:
    repo = make_repo(tmp_path / "a")
    repo.commit({"README.md": "a\n"})
    return repo


async def test_hook_install_writes_a_private_token_and_stores_only_its_hash(
    subject: Subject, repo: TestRepo
) -> None:
    token = hook_install(repo.bare, subject.database_url)
    path = repo.bare / TOKEN_FILE
    assert token.startswith("labcihook_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = await subject.repo(repo.bare)
    assert stored is not None
    assert stored.hook_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(stored.model_dump(), default=str)
    assert (stored.clone_url, stored.private, stored.default_branch) == (
        str(repo.bare),
        True,
        "main",
    )
    hook = (repo.bare / "hooks" / "post-receive").read_text()
    assert token not in hook
    assert TEST_SECRET not in hook
    assert "LABCI_WEBHOOK_SECRET" not in hook


async def test_public_flag_makes_a_public_repository(subject: Subject, repo: TestRepo) -> None:
    hook_install(repo.bare, subject.database_url, public=True)
    stored = await subject.repo(repo.bare)
    assert stored is not None
    assert stored.private is False


async def test_the_default_branch_is_the_bare_repositorys_head(
    subject: Subject, repo: TestRepo
) -> None:
    subprocess.run(
        ["git", "--git-dir", str(repo.bare), "symbolic-ref", "HEAD", "refs/heads/trunk"],
        check=True,
    )
    hook_install(repo.bare, subject.database_url)
    stored = await subject.repo(repo.bare)
    assert stored is not None
    assert stored.default_branch == "trunk"


async def test_the_hook_token_sends_an_event(subject: Subject, repo: TestRepo) -> None:
    hook_install(repo.bare, subject.database_url)
    response = await subject.send(push_event(repo.bare, "main"), bearer(read_hook_token(repo.bare)))
    assert (response.status_code, response.json()) == (202, {"event_id": 1, "duplicate": False})
    assert await subject.events() == 1
    # Who sent it (the local user) and the commit's subject, for the runs list.
    async with subject.sc.sessions() as session:
        event = await get_event(session, 1)
    subject_line = subprocess.run(
        ["git", "--git-dir", str(repo.bare), "log", "-1", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert event is not None
    assert (event.sender, event.title) == (getpass.getuser(), subject_line)
    assert subject_line


async def test_sender_and_title_must_be_strings(subject: Subject, repo: TestRepo) -> None:
    token = hook_install(repo.bare, subject.database_url)
    response = await subject.send({**push_event(repo.bare, "main"), "title": 7}, bearer(token))
    assert (response.status_code, response.json()) == (400, {"error": "title must be a string"})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer labcihook_not-a-token"},
        {"authorization": "Bearer "},
        {"authorization": "token labcihook_x"},
    ],
    ids=["none", "unknown", "empty", "other-scheme"],
)
async def test_no_or_a_wrong_token_is_401_and_stores_nothing(
    subject: Subject, repo: TestRepo, headers: dict[str, str]
) -> None:
    hook_install(repo.bare, subject.database_url)
    response = await subject.send(push_event(repo.bare, "main"), headers)
    assert response.status_code == 401
    assert await subject.events() == 0


async def test_the_webhook_secret_no_longer_signs_local_events(
    subject: Subject, repo: TestRepo
) -> None:
    hook_install(repo.bare, subject.database_url)
    body = json.dumps(push_event(repo.bare, "main")).encode()
    response = await subject.client.post(
        "/webhooks/git", content=body, headers={"x-hub-signature-256": sign(body, TEST_SECRET)}
    )
    assert response.status_code == 401
    assert "hook" in response.json()["error"]  # it names the credential the route takes
    assert await subject.events() == 0


async def test_a_token_speaks_only_for_its_own_repository(
    subject: Subject, repo: TestRepo, tmp_path: Path
) -> None:
    other = make_repo(tmp_path / "b", "other")
    other.commit({"README.md": "b\n"})
    token_a = hook_install(repo.bare, subject.database_url)
    hook_install(other.bare, subject.database_url)
    response = await subject.send(push_event(other.bare, "main"), bearer(token_a))
    assert (response.status_code, response.json()) == (
        403,
        {"error": "this hook token belongs to another repository"},
    )
    assert await subject.events() == 0


async def test_an_uninstalled_repository_is_refused(subject: Subject, repo: TestRepo) -> None:
    response = await subject.send(push_event(repo.bare, "main"), bearer("labcihook_guess"))
    assert response.status_code == 401
    assert await subject.repo(repo.bare) is None


async def test_reinstalling_rotates_the_token(subject: Subject, repo: TestRepo) -> None:
    old = hook_install(repo.bare, subject.database_url)
    new = hook_install(repo.bare, subject.database_url)
    assert new != old
    assert read_hook_token(repo.bare) == new
    refused = await subject.send(push_event(repo.bare, "main"), bearer(old))
    assert refused.status_code == 401
    accepted = await subject.send(push_event(repo.bare, "main"), bearer(new))
    assert accepted.status_code == 202
    assert await subject.events() == 1


async def test_a_wrongly_typed_field_is_400(subject: Subject, repo: TestRepo) -> None:
    token = hook_install(repo.bare, subject.database_url)
    event = {**push_event(repo.bare, "main"), "kind": "pull_request", "base_branch": "main"}
    response = await subject.send({**event, "pr_number": "7"}, bearer(token))
    assert (response.status_code, response.json()) == (
        400,
        {"error": "pr_number must be an integer"},
    )


SPEC = JobInstance(
    workflow="t",
    job_id="fit",
    key="fit",
    group="fit",
    job=JobSpec.model_validate({"id": "fit", "runs-on": ["cpu"], "steps": [{"run": "x"}]}),
).model_dump(mode="json", by_alias=True)


async def test_a_deleted_branch_cancels_its_unfinished_push_runs(
    subject: Subject, repo: TestRepo
) -> None:
    """Issue 14, item 6, on the local forge: the post-receive hook's `branch_deleted`
    ends the branch's unfinished push runs with the reason; other branches' runs go on."""
    token = hook_install(repo.bare, subject.database_url)
    runs = {}
    for branch in ("feat", "main"):
        sent = await subject.send(push_event(repo.bare, "main") | {"branch": branch},
                                  bearer(token))  # fmt: skip
        async with subject.sc.sessions() as session, session.begin():
            event = await get_event(session, sent.json()["event_id"])
            run = Run(event_id=event.id, repository_id=event.repository_id, workflow_path="t",
                      workflow_name="t", commit_sha=event.commit_sha, trigger="push",
                      branch=branch, state="running")  # fmt: skip
            session.add(run)
            await session.flush()
            session.add(Job(run_id=run.id, job_key="fit", context="labci/t/fit", spec=SPEC,
                            runs_on=["cpu"], timeout_s=60, state="running"))  # fmt: skip
            runs[branch] = run.id
    response = await subject.send(branch_deleted_event(repo.bare, "feat"), bearer(token))
    assert (response.status_code, response.json()) == (
        202,
        {"ended": "branch feat was deleted", "cancelled_runs": [runs["feat"]]},
    )
    async with subject.sc.sessions() as session:
        states = {b: (await session.get(Run, i)).conclusion for b, i in runs.items()}
    assert states == {"feat": "cancelled", "main": None}
    refused = await subject.send(
        {**branch_deleted_event(repo.bare, "feat"), "branch": ""}, bearer(token)
    )
    assert refused.status_code == 400
