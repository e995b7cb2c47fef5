"""Scheduling: label matching, slot limits, per-runner arq queues, and the reconciler."""

from __future__ import annotations

import json
import time

import pytest
from test_planning import push_event

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Runner
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries.runs import runs_for_commit
from labci_server.errors import Forbidden, NotFound
from labci_server.planning.planner import plan_event
from labci_server.scheduling.placement import Room, best_fit
from labci_server.scheduling.reconciler import reconcile
from labci_server.scheduling.runners import (
    create_registration_token,
    drain_runner,
    fetch_job,
    heartbeat,
    register_runner,
)
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.scheduling.shapes import Shape
from labci_server.scheduling.waiting import why_waiting
from labci_server.webhooks.ingest import store_event

R1 = Runner(id=1, name="cpu-box", labels=["self-hosted", "cpu"], slots=2, token_hash="a")
R2 = Runner(id=2, name="gpu-box", labels=["self-hosted", "cpu", "gpu"], slots=1, token_hash="b")


@pytest.mark.parametrize(
    ("runs_on", "free", "expected"),
    [
        (["cpu"], {1: 2, 2: 1}, 1),
        (["gpu"], {1: 2, 2: 1}, 2),
        (["cpu", "gpu"], {1: 2, 2: 1}, 2),
        (["gpu"], {1: 2, 2: 0}, None),
        (["cpu"], {1: 0, 2: 1}, 2),
        (["tpu"], {1: 2, 2: 1}, None),
        ([], {1: 1, 2: 1}, 1),
    ],
    ids=[
        "cpu-most-free",
        "gpu-only-one",
        "all-labels",
        "gpu-full",
        "cpu-falls-over",
        "unknown-label",
        "no-labels",
    ],
)
def test_pick_runner(runs_on, free, expected):
    runner = pick(runs_on, [R1, R2], free)
    assert (runner.id if runner else None) == expected


def pick(runs_on, runners, free, *, needs="host"):
    """The runner `best_fit` gives a job with these labels, given each runner's free slots."""
    rooms = [Room(runner=r, slots=free.get(r.id, 0)) for r in runners]
    chosen = best_fit(Shape(labels=tuple(runs_on), needs=needs), rooms)
    return chosen.runner if chosen else None


WORKFLOW = """\
name: many
on: push
jobs:
  a: {runs-on: cpu, timeout-minutes: 2, steps: [{run: "true"}]}
  b: {runs-on: cpu, steps: [{run: "true"}]}
  c: {runs-on: cpu, steps: [{run: "true"}]}
  g: {runs-on: gpu, steps: [{run: "true"}]}
"""


async def registered_runner(sc, labels, slots):
    token = await create_registration_token(sc)
    answer = await register_runner(
        sc, registration_token=token, name="r", labels=labels, slots=slots
    )
    await heartbeat(sc, token=answer["runner_token"], running=[], slots=slots, labels=labels)
    return answer


async def test_jobs_go_to_runner_queues_up_to_slots(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await registered_runner(sc, ["self-hosted", "cpu"], 2)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        assert await schedule_jobs(sc) == 2
        assert await schedule_jobs(sc) == 0  # slots are full; the gpu job has no runner
        queued = await sc.redis.zrange(runner["queue_name"], 0, -1)
        async with sc.sessions() as session:
            rows = await job_queries.jobs_of_runs(session, [1])
            states = {j.job_key: (j.state, j.runner_id) for j in rows}
            reasons = {j.job_key: j.reason for j in rows}
        raw = await sc.redis.get(f"arq:job:{queued[0].decode()}")
    queue = runner["queue_name"]
    assert sorted(q.decode() for q in queued) == [f"{queue}:job-1-1", f"{queue}:job-2-1"]
    assert states == {
        "a": ("queued", runner["runner_id"]),
        "b": ("queued", runner["runner_id"]),
        "c": ("pending", None),
        "g": ("error", None),  # no registered runner could ever take it: it fails at once
    }
    assert reasons["g"] == "cannot be placed: no runner with [gpu]"
    message = json.loads(raw)  # JSON on the wire, never pickle
    assert message["f"] == "run_job"
    assert message["a"] == [1, 1]


@pytest.mark.parametrize(
    ("version", "hinted"), [("0.2.0", True), ("1.0", True), ("0.1.0", False), (None, False)]
)
async def test_runners_that_take_it_get_a_prefetch_hint_with_the_job(
    tmp_path, database_url, redis_url, version, hinted
):
    """The commit comes with the job's message, so the runner fetches it while it fetches
    the job; a runner too old for the argument gets the message as it always was."""
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        token = await create_registration_token(sc)
        runner = await register_runner(
            sc, registration_token=token, name="r", labels=["cpu"], slots=1
        )
        await heartbeat(
            sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"], version=version
        )
        await plan_event(sc, await store_event(sc, push_event(repo.bare, sha, "d")) or 0)
        assert await schedule_jobs(sc) == 1
        (queued,) = await sc.redis.zrange(runner["queue_name"], 0, -1)
        message = json.loads(await sc.redis.get(f"arq:job:{queued.decode()}"))
    assert message["a"] == [1, 1]
    if hinted:
        assert message["k"] == {"prefetch": {"clone_url": str(repo.bare), "commit_sha": sha}}
    else:
        assert message["k"] == {}


async def test_reconciler_reenqueues_jobs_redis_lost(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    settings = test_settings(database_url, redis_url)
    async with server_context(settings) as sc:
        runner = await registered_runner(sc, ["cpu"], 1)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        assert await schedule_jobs(sc) == 1
        await sc.redis.flushdb()  # Redis loses everything
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, 1)
            job.queued_at = time.time() - 60  # long past the settle time
            session.add(job)
        await heartbeat(sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"])
        await reconcile(sc)
        queued = await sc.redis.zrange(runner["queue_name"], 0, -1)
    assert [q.decode() for q in queued] == [f"{runner['queue_name']}:job-1-1"]


async def test_expired_lease_retries_then_fails(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    settings = test_settings(database_url, redis_url, max_attempts=2)
    async with server_context(settings) as sc:
        await registered_runner(sc, ["cpu"], 1)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        for expected_attempt in (1, 2):
            await schedule_jobs(sc)
            async with sc.sessions() as session, session.begin():
                job = await job_queries.get_job(session, 1)
                assert (job.state, job.attempt) == ("queued", expected_attempt)
                job.state, job.lease_expires_at = "running", time.time() - 1
                session.add(job)
            await reconcile(sc)
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
    assert (job.state, job.attempt, job.reason) == ("error", 2, "runner lost (2 attempts)")


async def test_fetched_but_never_started_job_is_reaped(tmp_path, database_url, redis_url):
    """A runner that died during checkout (after fetching, before /start) and came back
    does not keep the job, or its slot, for good."""
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await registered_runner(sc, ["cpu"], 1)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        await schedule_jobs(sc)
        fetched = await fetch_job(sc, token=runner["runner_token"], job_id=1, attempt=1)
        assert fetched["attempt"] == 1
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, 1)
            job.lease_expires_at = time.time() - 1
            session.add(job)
        await heartbeat(sc, token=runner["runner_token"], running=[], slots=1, labels=["cpu"])
        await reconcile(sc)  # reaps, and kicks the scheduler loop, whose pass is this one:
        await schedule_jobs(sc)
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
    assert (job.attempt, job.state, job.runner_id) == (2, "queued", runner["runner_id"])
    assert job.reason == "runner lost during attempt 1"


async def test_jobs_finishing_together_finish_their_run(tmp_path, database_url, redis_url):
    import asyncio

    from labci_server.db.queries.runs import get_run
    from labci_server.results.uploads import complete_job, mark_started

    repo = make_repo(tmp_path)
    sha = repo.commit(
        {".labci/many.yml": WORKFLOW.replace('  g: {runs-on: gpu, steps: [{run: "true"}]}\n', "")}
    )
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await registered_runner(sc, ["cpu"], 3)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        (run_id,) = await plan_event(sc, event_id or 0)
        assert await schedule_jobs(sc) == 3
        tokens = {}
        for job_id in (1, 2, 3):
            fetched = await fetch_job(sc, token=runner["runner_token"], job_id=job_id, attempt=1)
            tokens[job_id] = fetched["job_token"]
            await mark_started(sc, job_id=job_id, attempt=1, token=tokens[job_id])
        await asyncio.gather(
            *(
                complete_job(
                    sc,
                    job_id=j,
                    attempt=1,
                    token=tokens[j],
                    outcome="success",
                    reason=None,
                    metrics={"acc": 0.5},
                    metrics_error=None,
                )
                for j in (1, 2, 3)
            )
        )
        async with sc.sessions() as session:
            run = await get_run(session, run_id)
    assert (run.state, run.conclusion) == ("finished", "success")


HOST_ONLY = Runner(
    id=3,
    name="host",
    labels=["cpu"],
    slots=1,
    token_hash="c",
    capabilities={"host": True, "container": False},
)
DOCKER_ONLY = Runner(
    id=4,
    name="docker",
    labels=["cpu"],
    slots=1,
    token_hash="d",
    capabilities={"host": False, "container": True},
)


@pytest.mark.parametrize(
    ("needs", "runners", "expected"),
    [
        ("container", [HOST_ONLY, DOCKER_ONLY], 4),
        ("host", [HOST_ONLY, DOCKER_ONLY], 3),
        ("container", [HOST_ONLY], None),
        ("host", [DOCKER_ONLY], None),
    ],
    ids=["container-to-docker", "host-to-process", "engine-down-waits", "no-host-runner"],
)
def test_jobs_go_to_runners_that_can_take_them(needs, runners, expected):
    runner = pick(["cpu"], runners, {3: 1, 4: 1}, needs=needs)
    assert (runner.id if runner else None) == expected


async def test_a_drained_runner_gets_no_new_job_until_resumed(tmp_path, database_url, redis_url):
    """An administrator's drain (`labci runners drain`, the runners page): a job queued on
    the runner and not yet fetched goes back to pending (a new attempt); the runner keeps
    heartbeating and gets nothing new; the waiting job says why; resumed, it gets the job."""
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        answer = await registered_runner(sc, ["self-hosted", "cpu"], 1)
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        assert await schedule_jobs(sc) == 1  # job a, queued on the runner, not fetched
        assert await drain_runner(sc.sessions, "r", drain=True, by="boss") == (1, 1)
        await heartbeat(sc, token=answer["runner_token"], running=[], slots=1, labels=["cpu"])
        assert await schedule_jobs(sc) == 0
        async with sc.sessions() as session:
            (run,) = await runs_for_commit(session, sha)
            jobs = await job_queries.jobs_of_runs(session, [run.id or 0])
            why = await why_waiting(session, run, jobs, settings=sc.settings)
        first = jobs[0]
        assert (first.state, first.attempt, first.runner_id) == ("pending", 2, None)
        assert first.reason == "runner r was drained by boss"
        assert why[first.id or 0] == "no online runner with [cpu] (1 drained)"
        with pytest.raises(Forbidden):  # the runner's fetch of attempt 1 is refused
            await fetch_job(sc, token=answer["runner_token"], job_id=first.id or 0, attempt=1)
        assert await drain_runner(sc.sessions, "r", drain=False, by="boss") == (1, 0)
        assert await schedule_jobs(sc) == 1
        with pytest.raises(NotFound):
            await drain_runner(sc.sessions, "nobody", drain=True, by="boss")


async def test_b10_a_silent_runners_queued_jobs_move_to_an_eligible_runner(
    tmp_path, database_url, redis_url
):
    """B10: heartbeats stop for a runner holding a queued, unstarted job: within a reaper
    cycle the job is a new attempt on an eligible runner, and off the silent one's queue."""
    repo = make_repo(tmp_path)
    sha = repo.commit(
        {".labci/one.yml": "on: push\njobs:\n  a: {runs-on: cpu, steps: [{run: x}]}\n"}
    )
    async with server_context(test_settings(database_url, redis_url)) as sc:
        dead = await registered_runner(sc, ["cpu"], 1)
        await plan_event(sc, await store_event(sc, push_event(repo.bare, sha, "d")) or 0)
        assert await schedule_jobs(sc) == 1
        assert await sc.redis.zcard(dead["queue_name"]) == 1
        async with sc.sessions() as session, session.begin():
            silent = await session.get(Runner, dead["runner_id"])
            silent.last_heartbeat_at = time.time() - 60  # its heartbeats stopped
            session.add(silent)
        alive = await registered_runner(sc, ["cpu"], 1)
        await reconcile(sc)  # one reaper cycle, and the pass it kicks
        assert await schedule_jobs(sc) == 1
        async with sc.sessions() as session:
            job = await job_queries.get_job(session, 1)
        dead_queue = await sc.redis.zrange(dead["queue_name"], 0, -1)
        alive_queue = await sc.redis.zrange(alive["queue_name"], 0, -1)
        leftover = await sc.redis.exists(f"arq:job:{dead['queue_name']}:job-1-1")
    assert (job.state, job.attempt, job.runner_id) == ("queued", 2, alive["runner_id"])
    assert job.reason == "runner went silent before starting the job"
    assert dead_queue == []
    assert leftover == 0
    assert [q.decode() for q in alive_queue] == [f"{alive['queue_name']}:job-1-2"]
