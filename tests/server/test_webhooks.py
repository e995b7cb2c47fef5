"""Webhook ingress (reliability A1, A2, A6): signatures, bad input, real payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from forge_standin import headers as hook_headers
from forge_standin import load_examples, pull_request_payload, push_payload
from forge_standin import sign as standin_sign
from helpers.server import TEST_SECRET, test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.webhooks.gitlocal import sign as local_sign

SRC = Path(__file__).resolve().parents[2] / "server" / "src"
SHA_A, SHA_B = "a" * 40, "b" * 40


@pytest.fixture
async def client(database_url, redis_url):
    settings = test_settings(database_url, redis_url)
    await upgrade(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


async def table_counts(client) -> dict[str, int]:
    from labci_server.db.queries.counts import count_rows

    async with client.app.state.context.sessions() as session:
        return await count_rows(session, ["events", "runs", "jobs", "outbox", "repositories"])


def delivery(event: str, payload: dict, delivery_id: str = "d-1", secret: str | None = TEST_SECRET):
    body = json.dumps(payload).encode()
    return body, hook_headers(event, delivery_id, body, secret)


def test_hmac_matches_githubs_published_vector():
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert local_sign(b"Hello, World!", "It's a Secret to Everybody") == expected
    assert standin_sign(b"Hello, World!", "It's a Secret to Everybody") == expected


SIGNATURE_EQUALITY = re.compile(
    r"(signature|sig|digest)\w*\s*[!=]=|[!=]=\s*\w*(signature|sign\(|digest)", re.I
)


def test_signature_lint_catches_plain_comparisons():
    assert SIGNATURE_EQUALITY.search("if signature == expected:")
    assert SIGNATURE_EQUALITY.search("return header != sign(body, secret)")
    assert not SIGNATURE_EQUALITY.search("hmac.compare_digest(signature, sign(body, secret))")


def test_no_signature_is_compared_with_equals():
    """A1 lint: signatures are compared in constant time, never with == or !=."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SIGNATURE_EQUALITY.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


def bad_deliveries() -> list[tuple[str, dict[str, str], bytes]]:
    payload = push_payload(
        "octo", "exp", "https://example.invalid/octo/exp.git", "refs/heads/main", SHA_A, SHA_B
    )
    body = json.dumps(payload).encode()
    good = hook_headers("push", "x", body, TEST_SECRET)
    digest = hmac.new(TEST_SECRET.encode(), body, hashlib.sha256).hexdigest()
    sha1 = "sha1=" + hmac.new(TEST_SECRET.encode(), body, hashlib.sha1).hexdigest()
    no_sig = {k: v for k, v in good.items() if k.lower() != "x-hub-signature-256"}
    cases = [
        ("wrong secret", {**good, "X-Hub-Signature-256": standin_sign(body, "wrong")}, body),
        ("missing header", no_sig, body),
        ("sha1 only", {**no_sig, "X-Hub-Signature": sha1}, body),
        ("empty", {**good, "X-Hub-Signature-256": "sha256="}, body),
        ("non-hex", {**good, "X-Hub-Signature-256": "sha256=" + "z" * 64}, body),
        ("truncated", {**good, "X-Hub-Signature-256": "sha256=" + digest[:-2]}, body),
        ("body altered", good, body[:-2] + b" }"),
        ("no prefix", {**good, "X-Hub-Signature-256": digest}, body),
        ("sha1 in the sha256 header", {**good, "X-Hub-Signature-256": sha1}, body),
    ]
    return cases


async def test_a_thousand_bad_deliveries_are_refused_and_leave_no_trace(client, redis_url):
    redis = client.app.state.context.redis
    keys_before = set(await redis.keys("*"))
    cases = bad_deliveries()
    statuses = []
    for i in range(1000):
        _name, headers, body = cases[i % len(cases)]
        headers = {**headers, "X-GitHub-Delivery": f"bad-{i}"}
        statuses.append(
            (await client.post("/webhooks/github", content=body, headers=headers)).status_code
        )
    assert statuses == [401] * 1000
    assert await table_counts(client) == {
        "events": 0,
        "runs": 0,
        "jobs": 0,
        "outbox": 0,
        "repositories": 0,
    }
    assert set(await redis.keys("*")) == keys_before


async def test_ping_is_answered(client):
    payload = load_examples("ping")[0]
    body, headers = delivery("ping", payload)
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert (response.status_code, response.json()) == (200, {"ok": True, "message": "pong"})


@pytest.mark.parametrize(
    "event", ["issues", "star", "check_suite", "release", "pull_request_review"], ids=str
)
async def test_events_we_do_not_act_on_are_ignored(client, event):
    payload = load_examples(event)[0]
    body, headers = delivery(event, payload)
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202
    assert "not acted on" in response.json()["ignored"]
    assert (await table_counts(client))["events"] == 0


@pytest.mark.parametrize("action", ["edited", "labeled", "assigned"], ids=str)
async def test_pull_request_actions_we_do_not_act_on(client, action):
    payload = pull_request_payload(
        action, "octo", "exp", "https://x.invalid/o/e.git", 3, "feat", SHA_B, "main", SHA_A
    )
    body, headers = delivery("pull_request", payload)
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202
    assert response.json()["ignored"].startswith("pull_request action")
    assert (await table_counts(client))["events"] == 0


async def test_valid_signature_on_non_json_body_is_400(client):
    body = b"this is not json {"
    headers = hook_headers("push", "d-nj", body, TEST_SECRET)
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 400
    assert "not a JSON" in response.json()["error"]
    assert (await table_counts(client))["events"] == 0


async def test_real_push_and_pr_examples_are_stored(client):
    pushes = [
        p
        for p in load_examples("push")
        if p["ref"].startswith("refs/heads/") and not p.get("deleted")
    ]
    prs = [
        p
        for p in load_examples("pull_request")
        if p["action"] in ("opened", "synchronize", "reopened")
    ]
    assert pushes
    assert prs
    for i, payload in enumerate([*pushes, *prs]):
        event = "push" if "pusher" in payload else "pull_request"
        body, headers = delivery(event, payload, delivery_id=f"real-{i}")
        response = await client.post("/webhooks/github", content=body, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["duplicate"] is False
    assert (await table_counts(client))["events"] == len(pushes) + len(prs)
    # What the payloads say of their repositories is kept: privacy. Their App installation
    # is not: this labci holds a token, not that App (tests/server/test_check_runs.py).
    from labci_server.db.queries.repositories import find_repository

    last = {p["repository"]["full_name"]: p for p in [*pushes, *prs]}
    async with client.app.state.context.sessions() as session:
        for full_name, payload in last.items():
            repo = await find_repository(session, provider="github", full_name=full_name)
            assert repo is not None
            assert repo.private is bool(payload["repository"].get("private"))
            assert repo.installation_id is None
    # Who sent each and its headline, for the runs list: the sender's login, and a pull
    # request's title or a push's head commit subject (its first line only).
    from labci_server.db.queries.events import event_by_delivery

    for i, payload in enumerate([*pushes, *prs]):
        async with client.app.state.context.sessions() as session:
            event = await event_by_delivery(session, f"real-{i}")
        assert event is not None
        assert event.sender == payload["sender"]["login"]
        if "pull_request" in payload:
            assert event.title == payload["pull_request"]["title"]
        else:
            message = (payload.get("head_commit") or {}).get("message") or ""
            assert event.title == (message.split("\n")[0].strip() or None)


async def test_a_push_headline_is_its_commit_subject_cut_to_300_characters(client):
    from labci_server.db.queries.events import event_by_delivery

    payload = copy.deepcopy(
        next(
            p
            for p in load_examples("push")
            if p["ref"].startswith("refs/heads/") and p.get("head_commit") and not p["deleted"]
        )
    )
    payload["head_commit"]["message"] = "  Fix the loss scaling  \n\nThe long story.\n"
    body, headers = delivery("push", payload, delivery_id="subject-1")
    assert (await client.post("/webhooks/github", content=body, headers=headers)).status_code == 202
    payload["after"] = "f" * 40
    payload["head_commit"]["message"] = "x" * 1000
    body, headers = delivery("push", payload, delivery_id="subject-2")
    assert (await client.post("/webhooks/github", content=body, headers=headers)).status_code == 202
    titles = []
    for delivery_id in ("subject-1", "subject-2"):
        async with client.app.state.context.sessions() as session:
            event = await event_by_delivery(session, delivery_id)
        titles.append(event.title if event else None)
    assert titles == ["Fix the loss scaling", "x" * 300]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("pull_request"),
        lambda p: p["pull_request"].pop("head"),
        lambda p: p.update(repository=None),
        lambda p: (
            p["pull_request"]["base"].update(ref=None)
            or p["pull_request"].pop("number")
            and p.pop("number")
        ),
    ],
    ids=["no-pull_request", "no-head", "null-repository", "no-number"],
)
async def test_mutated_real_payloads_get_400_with_a_reason(client, mutate):
    payload = pull_request_payload(
        "opened", "octo", "exp", "https://x.invalid/o/e.git", 3, "feat", SHA_B, "main", SHA_A
    )
    mutate(payload)
    body, headers = delivery("pull_request", payload)
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 400
    assert "lacks a field" in response.json()["error"]
    assert (await table_counts(client))["events"] == 0
    ping = load_examples("ping")[0]
    body, headers = delivery("ping", ping, delivery_id="after")
    assert (await client.post("/webhooks/github", content=body, headers=headers)).status_code == 200


async def test_fork_pull_request_is_stored_as_untrusted_and_planned(client):
    payload = pull_request_payload(
        "opened",
        "octo",
        "exp",
        "https://x.invalid/octo/exp.git",
        9,
        "typo-fix",
        SHA_B,
        "main",
        SHA_A,
        head_owner="stranger",
        head_repo="exp",
        head_clone_url="https://x.invalid/stranger/exp.git",
        author_association="CONTRIBUTOR",
    )
    body, headers = delivery("pull_request", payload, delivery_id="fork-1")
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202
    assert response.json()["from_fork"].startswith("pull request from a fork")
    sc = client.app.state.context
    from labci_server.db.queries.events import get_event

    async with sc.sessions() as session:
        event = await get_event(session, response.json()["event_id"])
    # Planned like any other (its workflows get "awaiting approval" statuses there); what
    # runs, where, and with which secrets is decided from these two facts.
    assert (event.from_fork, event.author_association) == (True, "CONTRIBUTOR")
    assert await sc.redis.keys("arq:job:plan-*") == [b"arq:job:plan-1"]


async def test_same_repository_pull_request_is_planned(client):
    payload = pull_request_payload(
        "opened", "octo", "exp", "https://x.invalid/octo/exp.git", 9, "f", SHA_B, "main", SHA_A
    )
    body, headers = delivery("pull_request", payload, delivery_id="own-1")
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert "from_fork" not in response.json()
    assert await client.app.state.context.redis.keys("arq:job:plan-*") == [b"arq:job:plan-1"]


async def test_local_trigger_with_only_a_signature_is_401(client):
    """The local forge's hook has its own token (see test_hook_credential.py); a body signed
    with the webhook secret, or a non-ASCII signature, is no credential there."""
    body = b'{"kind": "push"}'
    for signature in ("sha256=é".encode(), local_sign(body, TEST_SECRET)):
        response = await client.post(
            "/webhooks/git", content=body, headers={"x-hub-signature-256": signature}
        )
        assert response.status_code == 401
    assert (await table_counts(client))["events"] == 0


async def test_delivery_without_event_header_is_400(client):
    payload = push_payload(
        "octo", "exp", "https://x.invalid/o/e.git", "refs/heads/main", SHA_A, SHA_B
    )
    body, headers = delivery("push", payload)
    headers = {k: v for k, v in headers.items() if k.lower() != "x-github-event"}
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert (response.status_code, response.json()) == (400, {"error": "missing X-GitHub-Event"})


async def test_a_private_repository_is_remembered_as_private(client):
    payload = pull_request_payload(
        "opened", "octo", "secret", "https://x.invalid/o/s.git", 3, "feat", SHA_B, "main", SHA_A
    )
    payload["repository"]["private"] = True
    payload["installation"] = {"id": 4242, "node_id": "MDIz"}
    body, headers = delivery("pull_request", payload, delivery_id="private-1")
    assert (await client.post("/webhooks/github", content=body, headers=headers)).status_code == 202
    from labci_server.db.queries.repositories import find_repository

    async with client.app.state.context.sessions() as session:
        repo = await find_repository(session, provider="github", full_name="octo/secret")
    assert repo is not None
    # No GitHub App is configured here: the delivery's installation is not labci's to use.
    assert (repo.private, repo.installation_id) == (True, None)


async def test_a_nul_in_a_signed_delivery_is_a_400_and_stores_nothing(client):
    """GitHub signed it, but PostgreSQL cannot store a NUL: a 400, never a 5xx that GitHub
    would keep redelivering."""
    payload = push_payload(
        "octo", "exp", "https://example.invalid/octo/exp.git", "refs/heads/ma\u0000in", SHA_A, SHA_B
    )
    body, headers = delivery("push", payload, "nul-1")
    response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]
    assert (await table_counts(client))["events"] == 0


async def test_closing_a_pull_request_or_deleting_a_branch_cancels_its_unfinished_runs(client):
    """Issue 14, item 6: a closed pull request's runs (any head) and a deleted branch's push
    runs are cancelled with the reason in their statuses; its events not planned yet never
    will be; a delivery seen again cancels nothing more."""
    from labci_server.db.models import Job, Run
    from labci_server.db.queries.events import event_by_delivery
    from labci_server.db.queries.outbox import messages_for_commit
    from labci_server.db.queries.runs import jobs_of_run
    from labci_spec import Job as JobSpec
    from labci_spec import JobInstance

    job_spec = JobSpec.model_validate({"id": "fit", "runs-on": ["cpu"], "steps": [{"run": "x"}]})
    spec = JobInstance(workflow="train", job_id="fit", key="fit", group="fit", job=job_spec)
    sessions = client.app.state.context.sessions
    opened = pull_request_payload(
        "opened", "octo", "exp", "https://x.invalid/o/e.git", 3, "feat", SHA_B, "main", SHA_A
    )
    body, headers = delivery("pull_request", opened, delivery_id="pr-opened")
    assert (await client.post("/webhooks/github", content=body, headers=headers)).status_code == 202
    async with sessions() as session, session.begin():
        event = await event_by_delivery(session, "pr-opened")
        runs = {}
        for key, pr, trigger, branch in (("pr", 3, "pull_request", "feat"),
                                         ("other-pr", 4, "pull_request", "x"),
                                         ("push", None, "push", "feat")):  # fmt: skip
            run = Run(event_id=event.id, repository_id=event.repository_id, workflow_path=key,
                      workflow_name="train", commit_sha=SHA_B, trigger=trigger, branch=branch,
                      pr_number=pr, state="running", dedupe_key=key)  # fmt: skip
            session.add(run)
            await session.flush()
            session.add(Job(run_id=run.id, job_key="fit", context=f"labci/train/{key}",
                            spec=spec.model_dump(mode="json", by_alias=True), runs_on=["cpu"],
                            timeout_s=60, state="running"))  # fmt: skip
            runs[key] = run.id
    closed = copy.deepcopy(opened)
    closed["action"] = "closed"
    body, headers = delivery("pull_request", closed, delivery_id="pr-closed")
    answer = await client.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 202
    assert answer.json() == {"ended": "pull request #3 was closed", "cancelled_runs": [runs["pr"]]}
    async with sessions() as session:
        (job,) = await jobs_of_run(session, runs["pr"])
        run = await session.get(Run, runs["pr"])
        event = await event_by_delivery(session, "pr-opened")
        statuses = {m.context: m for m in await messages_for_commit(
            session, repository_id=event.repository_id, commit_sha=SHA_B)}  # newest last  # fmt: skip
    assert (run.state, run.conclusion, run.dedupe_key) == ("finished", "cancelled", None)
    assert (job.state, job.reason) == ("cancelled", "pull request #3 was closed")
    assert (event.state, event.error) == ("superseded", "pull request #3 was closed")
    assert "pull request #3 was closed" in statuses["labci/train/pr"].description
    again = copy.deepcopy(closed)
    again["pull_request"]["merged"] = True
    body, headers = delivery("pull_request", again, delivery_id="pr-merged")
    answer = await client.post("/webhooks/github", content=body, headers=headers)
    assert answer.json() == {"ended": "pull request #3 was merged", "cancelled_runs": []}

    gone = push_payload("octo", "exp", "https://x.invalid/o/e.git", "refs/heads/feat", SHA_B,
                        "0" * 40)  # fmt: skip
    gone["deleted"] = True
    body, headers = delivery("push", gone, delivery_id="feat-deleted")
    answer = await client.post("/webhooks/github", content=body, headers=headers)
    assert answer.json() == {"ended": "branch feat was deleted", "cancelled_runs": [runs["push"]]}
    async with sessions() as session:
        assert (await session.get(Run, runs["other-pr"])).state == "running"  # another PR's


async def test_a_late_close_leaves_the_reopened_pull_requests_runs_alone(client):
    """A `closed` delivery that arrives after the pull request was reopened (a `reopened`
    was received after its `closed_at`) ends only what was received before the reopen;
    one with no reopen after it ends everything."""
    from labci_server.db.models import Job, Run
    from labci_server.db.queries.events import event_by_delivery
    from labci_spec import Job as JobSpec
    from labci_spec import JobInstance

    job_spec = JobSpec.model_validate({"id": "fit", "runs-on": ["cpu"], "steps": [{"run": "x"}]})
    spec = JobInstance(workflow="t", job_id="fit", key="fit", group="fit", job=job_spec)
    sessions = client.app.state.context.sessions
    runs, received = {}, {}
    for action in ("synchronize", "reopened"):
        payload = pull_request_payload(
            action, "octo", "exp", "https://x.invalid/o/e.git", 8, "feat", SHA_B, "main", SHA_A
        )
        body, headers = delivery("pull_request", payload, delivery_id=f"pr8-{action}")
        assert (await client.post("/webhooks/github", content=body, headers=headers)).is_success
        async with sessions() as session, session.begin():
            event = await event_by_delivery(session, f"pr8-{action}")
            run = Run(event_id=event.id, repository_id=event.repository_id, workflow_path="t",
                      workflow_name="t", commit_sha=SHA_B, trigger="pull_request", branch="feat",
                      pr_number=8, state="running")  # fmt: skip
            session.add(run)
            await session.flush()
            session.add(Job(run_id=run.id, job_key="fit", context=f"labci/t/{action}",
                            spec=spec.model_dump(mode="json", by_alias=True), runs_on=["cpu"],
                            timeout_s=60, state="running"))  # fmt: skip
            runs[action], received[action] = run.id, event.received_at

    def closed_at(seconds: float) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    late = copy.deepcopy(payload)
    late["action"] = "closed"
    late["pull_request"]["closed_at"] = closed_at(received["reopened"] - 60)  # then reopened
    body, headers = delivery("pull_request", late, delivery_id="pr8-closed-late")
    answer = await client.post("/webhooks/github", content=body, headers=headers)
    assert answer.json() == {
        "ended": "pull request #8 was closed",
        "cancelled_runs": [runs["synchronize"]],  # received before the reopen, not after
    }
    again = copy.deepcopy(late)
    again["pull_request"]["closed_at"] = closed_at(received["reopened"] + 60)  # closed again
    body, headers = delivery("pull_request", again, delivery_id="pr8-closed")
    answer = await client.post("/webhooks/github", content=body, headers=headers)
    assert answer.json() == {
        "ended": "pull request #8 was closed",
        "cancelled_runs": [runs["reopened"]],
    }


def test_githubs_own_closed_and_deleted_examples_end_work():
    from gidgethub.sansio import Event

    from labci_server.webhooks.github import ended_work

    closed = [p for p in load_examples("pull_request") if p["action"] == "closed"]
    deleted_tags = [p for p in load_examples("push") if p.get("deleted")]
    assert closed
    assert deleted_tags
    for payload in closed:
        ended = ended_work(Event(payload, event="pull_request", delivery_id="x"))
        how = "merged" if payload["pull_request"]["merged"] else "closed"
        assert ended is not None
        assert ended.reason == f"pull request #{payload['number']} was {how}"
        assert ended.pr_number == payload["number"]
        closed_at = datetime.fromisoformat(payload["pull_request"]["closed_at"])
        assert ended.at == closed_at.timestamp()
    for payload in deleted_tags:  # GitHub's examples delete tags only: no run is a tag's
        assert payload["ref"].startswith("refs/tags/")
        assert ended_work(Event(payload, event="push", delivery_id="x")) is None
