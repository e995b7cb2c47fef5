"""Job tokens (D11): minted once when a runner claims the attempt, valid only for that job
and attempt and only until the attempt ends; runner tokens answer 401 once revoked."""

from __future__ import annotations

import time

import pytest
from test_planning import push_event
from test_scheduling import WORKFLOW, registered_runner

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.queries import jobs as job_queries
from labci_server.errors import Conflict, Forbidden, Unauthorized
from labci_server.planning.planner import plan_event
from labci_server.results.cancel import cancel_run_by_id
from labci_server.results.uploads import add_logs, complete_job, mark_started, update_step
from labci_server.scheduling.reconciler import reap_expired_leases
from labci_server.scheduling.runners import fetch_job, heartbeat, revoke_runner
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.ingest import store_event

LINE = [{"seq": 0, "step": 0, "stream": "stdout", "text": "hi"}]


async def _two_jobs(sc, repo, sha):
    runner = await registered_runner(sc, ["self-hosted", "cpu"], 2)
    await plan_event(sc, await store_event(sc, push_event(repo.bare, sha, "d")) or 0)
    assert await schedule_jobs(sc) == 2
    first = await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=1)
    second = await fetch_job(sc, token=runner["runner_token"], job_id=2, attempt=1)
    return runner, first["job_token"], second["job_token"]


async def test_a_job_token_is_minted_once_and_only_for_its_job(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner, token1, token2 = await _two_jobs(sc, repo, sha)
        # The runner token alone gets no second token for a job in flight.
        with pytest.raises(Conflict, match="fetched already"):
            await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=1)
        await mark_started(sc, job_id=1, attempt=1, token=token1)
        # Job 2's token reports nothing for job 1: 403, whatever the route.
        with pytest.raises(Forbidden, match="another job"):
            await add_logs(sc, job_id=1, attempt=1, token=token2, lines=LINE)
        with pytest.raises(Forbidden):
            await complete_job(
                sc, job_id=1, attempt=1, token=token2, outcome="success", reason=None,
                metrics={"accuracy": 0.999}, metrics_error=None,
            )  # fmt: skip
        with pytest.raises(Unauthorized):
            await mark_started(sc, job_id=1, attempt=1, token="labcijob_guessed")
        await complete_job(
            sc, job_id=1, attempt=1, token=token1, outcome="success", reason=None,
            metrics={"accuracy": 0.8}, metrics_error=None,
        )  # fmt: skip
        # The attempt has ended: its token with it, for a repeated completion too.
        with pytest.raises(Unauthorized, match="ended"):
            await complete_job(
                sc, job_id=1, attempt=1, token=token1, outcome="success", reason=None,
                metrics={"accuracy": 0.999}, metrics_error=None,
            )  # fmt: skip
        with pytest.raises(Unauthorized):
            await add_logs(sc, job_id=1, attempt=1, token=token1, lines=LINE)
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
            metrics = await job_queries.job_metrics(session, 1)
        assert (job.state, job.job_token_hash) == ("success", None)
        assert metrics == {"accuracy": 0.8}


async def test_a_cancelled_attempt_reports_once_then_its_token_ends(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        _, token1, _ = await _two_jobs(sc, repo, sha)
        await mark_started(sc, job_id=1, attempt=1, token=token1)
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
        await cancel_run_by_id(sc, job.run_id, reason="cancelled by a test")
        # While being stopped, the attempt still delivers its last lines and its report…
        await add_logs(sc, job_id=1, attempt=1, token=token1, lines=LINE)
        await complete_job(
            sc, job_id=1, attempt=1, token=token1, outcome="cancelled", reason="cancelled",
            metrics=None, metrics_error=None,
        )  # fmt: skip
        # …and nothing after it.
        with pytest.raises(Unauthorized):
            await add_logs(sc, job_id=1, attempt=1, token=token1, lines=LINE)


async def test_a_superseded_attempts_token_gets_409_on_every_report(
    tmp_path, database_url, redis_url
):
    """B2: attempt 1's lease ran out (its runner paused) and attempt 2 took over. Attempt
    1's token, sent again when its runner comes back, gets 409 (stale) on every report,
    before and after attempt 2 ends, and nothing of it is stored; attempt 2's own token
    ends with the job (401, D11)."""
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner, token1, _ = await _two_jobs(sc, repo, sha)
        await mark_started(sc, job_id=1, attempt=1, token=token1)
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, 1, for_update=True)
            job.lease_expires_at = time.time() - 1  # the runner stopped heartbeating
            session.add(job)
        await reap_expired_leases(sc, time.time())
        assert await schedule_jobs(sc) == 1
        fetched = await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=2)
        token2 = fetched["job_token"]
        stale_reports = {
            "start": lambda: mark_started(sc, job_id=1, attempt=1, token=token1),
            "logs": lambda: add_logs(sc, job_id=1, attempt=1, token=token1, lines=LINE),
            "step": lambda: update_step(
                sc, job_id=1, attempt=1, index=0, token=token1, values={"status": "success"}
            ),
            "complete": lambda: complete_job(
                sc,
                job_id=1,
                attempt=1,
                token=token1,
                outcome="success",
                reason=None,
                metrics={"accuracy": 0.999},
                metrics_error=None,
            ),  # fmt: skip
        }
        refused = {}
        for name, report in stale_reports.items():
            try:
                await report()
            except Conflict as exc:
                refused[name] = str(exc)
        stale = "job 1: this token's attempt is stale, attempt 2 replaced it"
        assert refused == dict.fromkeys(stale_reports, stale)
        await mark_started(sc, job_id=1, attempt=2, token=token2)
        await complete_job(
            sc, job_id=1, attempt=2, token=token2, outcome="success", reason=None,
            metrics={"accuracy": 0.8}, metrics_error=None,
        )  # fmt: skip
        with pytest.raises(Conflict, match="stale"):
            await stale_reports["complete"]()
        with pytest.raises(Unauthorized, match="ended"):
            await add_logs(sc, job_id=1, attempt=2, token=token2, lines=LINE)
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
            metrics = await job_queries.job_metrics(session, 1)
            lines = await job_queries.log_lines(session, job_id=1, attempt=1, limit=10)
    assert (job.state, job.attempt, metrics, lines) == ("success", 2, {"accuracy": 0.8}, [])


async def test_a_revoked_runner_gets_401_everywhere(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await registered_runner(sc, ["self-hosted", "cpu"], 2)
        await plan_event(sc, await store_event(sc, push_event(repo.bare, sha, "d")) or 0)
        assert await schedule_jobs(sc) == 2
        assert await revoke_runner(sc.sessions, "r") == 1
        with pytest.raises(Unauthorized):
            await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=1)
        with pytest.raises(Unauthorized):
            await heartbeat(sc, token=runner["runner_token"], running=[], slots=1, labels=[])


async def test_a_heartbeat_never_cancels_a_job_its_runner_just_reported(
    tmp_path, database_url, redis_url
):
    """Issue 14 item 6: the runner's heartbeat, sent while its final report is on its way,
    still lists the job. The server has recorded the job finished by that very report, so
    it must not answer "cancel" (the runner would cancel itself mid-report). A job the
    server ended (cancelled) is cancelled on the runner as before."""
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner, token1, _token2 = await _two_jobs(sc, repo, sha)
        for job_id, token in ((1, token1), (2, _token2)):
            await mark_started(sc, job_id=job_id, attempt=1, token=token)
        await complete_job(
            sc, job_id=1, attempt=1, token=token1, outcome="failure", reason="exit 1",
            metrics=None, metrics_error=None,
        )  # fmt: skip
        answer = await heartbeat(
            sc, token=runner["runner_token"], running=[(1, 1), (2, 1)], slots=2,
            labels=["self-hosted", "cpu"],
        )  # fmt: skip
        assert answer["cancel"] == []
        await cancel_run_by_id(sc, 1, reason="cancelled by boss")
        answer = await heartbeat(
            sc, token=runner["runner_token"], running=[(1, 1), (2, 1)], slots=2,
            labels=["self-hosted", "cpu"],
        )  # fmt: skip
        assert answer["cancel"] == [{"job_id": 2, "attempt": 1}]
