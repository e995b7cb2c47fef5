"""The artifact store: paths checked again on the server, the job's max-size enforced while
the body streams, uploads fenced by the attempt."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_planning import push_event

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.queries import jobs as job_queries
from labci_server.errors import BadRequest, Conflict
from labci_server.planning.planner import plan_event
from labci_server.results.artifacts import TooLarge, artifact_path_problem, store_artifact
from labci_server.scheduling.retry import back_to_pending
from labci_server.scheduling.runners import (
    create_registration_token,
    fetch_job,
    heartbeat,
    register_runner,
)
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.ingest import store_event

WORKFLOW = """\
on: push
jobs:
  a: {runs-on: cpu, steps: [{run: x}], artifacts: {paths: "**", max-size: 10}}
"""


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("plots/a.png", None),
        (
            "../runner.json",
            "path escapes workspace: an artifact path may not contain '.' or '..' parts",
        ),
        (
            "plots/../../x",
            "path escapes workspace: an artifact path may not contain '.' or '..' parts",
        ),
        ("./a", "path escapes workspace: an artifact path may not contain '.' or '..' parts"),
        ("/etc/passwd", "an artifact path is relative and uses '/'"),
        ("a\\\\b", "an artifact path is relative and uses '/'"),
        ("", "an artifact path has 1 to 512 characters"),
    ],
    ids=["ok", "dotdot", "inner-dotdot", "dot", "absolute", "backslash", "empty"],
)
def test_artifact_paths_are_checked_again(path: str, problem: str | None) -> None:
    assert artifact_path_problem(path) == problem


async def body(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_max_size_is_enforced_while_streaming_and_stale_attempts_are_refused(
    tmp_path: Path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/a.yml": WORKFLOW})
    store = tmp_path / "artifacts"
    async with server_context(
        test_settings(database_url, redis_url, artifacts_dir=str(store))
    ) as sc:
        token = await create_registration_token(sc)
        runner = await register_runner(
            sc, registration_token=token, name="r", labels=["cpu"], slots=1
        )
        await heartbeat(sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"])
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        await schedule_jobs(sc)
        job = await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=1)
        kept = await store_artifact(
            sc, job_id=1, attempt=1, token=job["job_token"], path="a.bin", body=body(b"1234", b"56")
        )
        assert kept["size_bytes"] == 6
        assert (store / "1" / "1" / "a.bin").read_bytes() == b"123456"
        with pytest.raises(TooLarge, match="max-size"):  # 6 + 5 > 10
            await store_artifact(
                sc, job_id=1, attempt=1, token=job["job_token"], path="b.bin", body=body(b"12345")
            )
        assert sorted(p.name for p in (store / "1" / "1").iterdir()) == ["a.bin"]  # no leftovers
        with pytest.raises(BadRequest):
            await store_artifact(
                sc, job_id=1, attempt=1, token=job["job_token"], path="../x", body=body(b"x")
            )
        async with sc.sessions() as session, session.begin():
            back_to_pending(session, await job_queries.get_job(session, 1), reason="lost")
        with pytest.raises(Conflict, match="stale"):  # attempt 2 replaced it (B2)
            await store_artifact(
                sc, job_id=1, attempt=1, token=job["job_token"], path="c.bin", body=body(b"c")
            )
