"""The scheduler against the real database (issue 14, items 2–4 and 8): no window that lets
waiting jobs block others, the round robin between repositories, priorities, repository
limits, jobs that can never be placed, `queue_timeout`, coalesced passes and racing
schedulers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from helpers.server import server_context, test_settings
from labci_server.db.models import Event, Job, Repository, Run, Runner
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries.runners import all_runners
from labci_server.queue import SCHEDULE_WAKE_KEY, kick_scheduler
from labci_server.scheduling.scheduler import end_long_waits, schedule_jobs
from labci_server.scheduling.waiting import why_waiting
from labci_server.workers import SchedulingPasses, scheduler_loop
from labci_spec import Job as JobSpec
from labci_spec import JobInstance

SHA = "c" * 40


async def add_repo(sc, name: str, **fields: Any) -> int:
    async with sc.sessions() as session, session.begin():
        repo = Repository(provider="github", full_name=name, clone_url="x", **fields)
        session.add(repo)
        await session.flush()
        return repo.id or 0


async def add_jobs(
    sc,
    repo_id: int,
    count: int,
    *,
    runs_on=("cpu",),
    trigger="push",
    branch="main",
    matrix: str | None = None,
    **spec,
) -> list[int]:
    """One run of `count` pending jobs (one statement each for the bulk)."""
    async with sc.sessions() as session, session.begin():
        event = Event(delivery_id=f"d{time.monotonic_ns()}", provider="github", kind=trigger,
                      repository_id=repo_id, commit_sha=SHA, branch=branch)  # fmt: skip
        session.add(event)
        await session.flush()
        run = Run(event_id=event.id or 0, repository_id=repo_id, workflow_path=".labci/t.yml",
                  workflow_name="t", commit_sha=SHA, trigger=trigger, branch=branch,
                  state="pending")  # fmt: skip
        session.add(run)
        await session.flush()
        jobs = [
            Job(
                run_id=run.id or 0,
                job_key=f"j{i}",
                workflow_job=matrix or f"j{i}",
                context=f"labci/t/j{i}",
                spec=instance(f"j{i}", runs_on, **spec),
                runs_on=list(runs_on),
                timeout_s=60,
            )  # fmt: skip
            for i in range(count)
        ]
        session.add_all(jobs)
        await session.flush()
        return [j.id or 0 for j in jobs]


def instance(key: str, runs_on, **fields: Any) -> dict[str, Any]:
    """A planned job's spec, as planning stores it."""
    job = JobSpec.model_validate(
        {"id": key, "runs-on": list(runs_on), "steps": [{"run": "true"}], **fields}
    )
    planned = JobInstance(workflow="t", job_id=key, key=key, group=key, job=job)
    return planned.model_dump(mode="json", by_alias=True)


async def add_runner(sc, name: str, labels=("cpu",), *, slots=1, **fields: Any) -> int:
    fields = {"last_heartbeat_at": time.time(), **fields}
    async with sc.sessions() as session, session.begin():
        runner = Runner(name=name, labels=list(labels), slots=slots, token_hash=name,
                        queue_name=f"labci:runner:{name}", **fields)  # fmt: skip
        session.add(runner)
        await session.flush()
        return runner.id or 0


async def heartbeat(sc) -> None:
    """Every runner sends a heartbeat (as the runner processes would, every few seconds)."""
    async with sc.sessions() as session, session.begin():
        for runner in await all_runners(session):
            runner.last_heartbeat_at = time.time()
            session.add(runner)


async def states(sc, ids: list[int]) -> dict[int, tuple[str, int | None]]:
    async with sc.sessions() as session:
        rows = [await job_queries.get_job(session, i) for i in ids]
    return {j.id or 0: (j.state, j.runner_id) for j in rows if j is not None}


async def finish(sc, job_id: int) -> None:
    async with sc.sessions() as session, session.begin():
        job = await job_queries.get_job(session, job_id)
        job.state, job.finished_at = "success", time.time()
        session.add(job)


async def test_many_waiting_jobs_do_not_keep_out_one_that_fits(tmp_path, database_url, redis_url):
    """600 GPU jobs wait for the one GPU machine (busy); a CPU job queued after them goes
    to the free CPU machine in the first pass (before: a 500-job window starved it)."""
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc, "octo/sweep")
        gpu_runner = await add_runner(sc, "gpu-1", ("gpu",), slots=1)
        cpu_runner = await add_runner(sc, "cpu-1", ("cpu",), slots=1)
        (busy,) = await add_jobs(sc, repo, 1, runs_on=("gpu",))
        assert await schedule_jobs(sc) == 1  # the GPU machine's one slot is taken
        waiting = await add_jobs(sc, repo, 600, runs_on=("gpu",))
        (late,) = await add_jobs(sc, repo, 1, runs_on=("cpu",))
        assert await schedule_jobs(sc) == 1
        got = await states(sc, [busy, late, waiting[0], waiting[-1]])
        await heartbeat(sc)  # online still, however long a loaded machine took
        async with sc.sessions() as session:
            run = await session.get(Run, 3)
            last = await job_queries.get_job(session, waiting[-1])
            why = await why_waiting(session, run, [last], settings=sc.settings)
    assert got == {
        busy: ("queued", gpu_runner),
        late: ("queued", cpu_runner),
        waiting[0]: ("pending", None),
        waiting[-1]: ("pending", None),
    }
    assert why[waiting[-1]] == "waiting for a free runner with [gpu] (1 online); 600th in the queue"


async def test_a_sweep_does_not_starve_another_repositorys_check(tmp_path, database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        sweep_repo, pr_repo = await add_repo(sc, "octo/sweep"), await add_repo(sc, "octo/app")
        await add_runner(sc, "cpu-1", slots=1)
        sweep = await add_jobs(sc, sweep_repo, 30, branch="sweep")
        assert await schedule_jobs(sc) == 1
        (check,) = await add_jobs(sc, pr_repo, 1, trigger="pull_request", branch="fix")
        await finish(sc, sweep[0])
        assert await schedule_jobs(sc) == 1
        first = await states(sc, [sweep[1], check])
        await finish(sc, check)
        assert await schedule_jobs(sc) == 1
        second = await states(sc, [sweep[1]])
    assert first == {sweep[1]: ("pending", None), check: ("queued", 1)}
    assert second == {sweep[1]: ("queued", 1)}


async def test_default_branch_pushes_outrank_pull_request_checks(tmp_path, database_url, redis_url):
    settings = test_settings(database_url, redis_url, priority_default_branch=5)
    async with server_context(settings) as sc:
        repo = await add_repo(sc, "octo/app", default_branch="main")
        await add_runner(sc, "cpu-1", slots=1)
        (check,) = await add_jobs(sc, repo, 1, trigger="pull_request", branch="fix")
        (side,) = await add_jobs(sc, repo, 1, trigger="push", branch="feature")
        (main,) = await add_jobs(sc, repo, 1, trigger="push", branch="main")
        assert await schedule_jobs(sc) == 1
        got = await states(sc, [check, side, main])
        async with sc.sessions() as session:
            priorities = {i: (await job_queries.get_job(session, i)).priority for i in got}
    assert got[main] == ("queued", 1)
    assert got[check] == got[side] == ("pending", None)
    assert priorities == {check: 0, side: 0, main: 5}


async def test_a_repository_limit_holds_its_jobs_back(tmp_path, database_url, redis_url):
    settings = test_settings(database_url, redis_url, repository_max_jobs=1)
    async with server_context(settings) as sc:
        capped = await add_repo(sc, "octo/capped")
        roomy = await add_repo(sc, "octo/roomy", max_jobs=2)  # its own limit overrides
        await add_runner(sc, "cpu-1", slots=8)
        capped_jobs = await add_jobs(sc, capped, 3)
        roomy_jobs = await add_jobs(sc, roomy, 3)
        assert await schedule_jobs(sc) == 3
        assert await schedule_jobs(sc) == 0
        got = await states(sc, capped_jobs + roomy_jobs)
        await heartbeat(sc)
        async with sc.sessions() as session:
            run = await session.get(Run, 1)
            waiting = await job_queries.get_job(session, capped_jobs[1])
            why = await why_waiting(session, run, [waiting], settings=sc.settings)
    assert [got[i][0] for i in capped_jobs] == ["queued", "pending", "pending"]
    assert [got[i][0] for i in roomy_jobs] == ["queued", "queued", "pending"]
    assert why[capped_jobs[1]].endswith("; the repository has 1 jobs queued or running, its limit")


async def test_jobs_no_runner_could_ever_take_fail_at_once(tmp_path, database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc, "octo/big")
        await add_runner(sc, "a100-1", ("gpu", "a100"), gpus={"gpus": [
            {"id": "0", "memory_mib": 40960}, {"id": "1", "memory_mib": 40960}]})  # fmt: skip
        (big,) = await add_jobs(sc, repo, 1, runs_on=("gpu", "a100"), resources={"gpus": 4})
        (fits,) = await add_jobs(sc, repo, 1, runs_on=("gpu", "a100"), resources={"gpus": 2})
        assert await schedule_jobs(sc) == 1
        async with sc.sessions() as session:
            failed = await job_queries.get_job(session, big)
            placed = await job_queries.get_job(session, fits)
    assert (failed.state, failed.reason) == (
        "error",
        "cannot be placed: no runner with [gpu, a100] and ≥ 4 GPUs (the largest has 2 GPUs)",
    )
    assert (placed.state, placed.gpu_ids) == ("queued", ["0", "1"])


async def test_a_wait_past_the_queue_timeout_ends_with_the_reason(
    tmp_path, database_url, redis_url
):
    settings = test_settings(database_url, redis_url, queue_timeout_s=60)
    async with server_context(settings) as sc:
        repo = await add_repo(sc, "octo/app")
        await add_runner(sc, "gpu-gone", ("gpu",), last_heartbeat_at=time.time() - 3600)
        (stuck,) = await add_jobs(sc, repo, 1, runs_on=("gpu",))
        (fresh,) = await add_jobs(sc, repo, 1, runs_on=("gpu",))
        assert await schedule_jobs(sc) == 0  # indexed: each waits from now
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, stuck)
            job.pending_since = time.time() - 125
            session.add(job)
        assert await end_long_waits(sc, time.time()) == 1
        got = await states(sc, [stuck, fresh])
        async with sc.sessions() as session:
            reason = (await job_queries.get_job(session, stuck)).reason
    assert got == {stuck: ("error", None), fresh: ("pending", None)}
    assert reason == (
        "waited 2.08 min for a runner, longer than the queue timeout (1 min): "
        "no online runner with [gpu]"
    )


async def test_kicks_coalesce_into_one_pending_pass(tmp_path, database_url, redis_url):
    """However many kicks arrive, at most one pass is pending; the worker's scheduler loop
    wakes on a kick and places the job."""
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await sc.redis.delete(SCHEDULE_WAKE_KEY)
        for _ in range(200):
            await kick_scheduler(sc.redis)
        assert await sc.redis.llen(SCHEDULE_WAKE_KEY) == 1
        await sc.redis.delete(SCHEDULE_WAKE_KEY)
        repo = await add_repo(sc, "octo/app")
        await add_runner(sc, "cpu-1")
        (job_id,) = await add_jobs(sc, repo, 1)
        loop = asyncio.create_task(scheduler_loop(SchedulingPasses(sc)))
        try:
            await kick_scheduler(sc.redis)
            for _ in range(2400):  # the hang guard: 120 s
                if (await states(sc, [job_id]))[job_id][0] == "queued":
                    break
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
        assert (await states(sc, [job_id]))[job_id] == ("queued", 1)


async def test_two_racing_schedulers_enqueue_a_job_once(tmp_path, database_url, redis_url):
    """B11: passes racing for the same jobs claim each once and enqueue each once."""
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc, "octo/app")
        await add_runner(sc, "cpu-1", slots=4)
        ids = await add_jobs(sc, repo, 4)
        placed = await asyncio.gather(*(schedule_jobs(sc) for _ in range(4)))
        queued = await sc.redis.zrange("labci:runner:cpu-1", 0, -1)
    assert sum(placed) == 4
    assert sorted(q.decode() for q in queued) == [f"labci:runner:cpu-1:job-{i}-1" for i in ids]


def test_job_limit_command_sets_and_clears_a_repository_limit(database_url):
    from test_cli import labci

    from labci_server.db.engine import make_engine, make_sessionmaker
    from labci_server.db.migrate import upgrade
    from labci_server.db.queries.repositories import ensure_repository

    async def limit() -> int | None:
        engine = make_engine(database_url)
        async with make_sessionmaker(engine)() as session, session.begin():
            found = await ensure_repository(
                session, provider="github", full_name="octo/exp", clone_url="https://x"
            )
        await engine.dispose()
        return found.max_jobs

    asyncio.run(upgrade(database_url))
    assert asyncio.run(limit()) is None
    env = {"PATH": "/usr/bin:/bin", "LABCI_DATABASE_URL": database_url}
    done = labci("repos", "job-limit", "octo/exp", "4", env=env)
    assert (done.returncode, done.stdout) == (
        0,
        "octo/exp: at most 4 jobs queued or running at once\n",
    )
    assert asyncio.run(limit()) == 4
    back = labci("repos", "job-limit", "octo/exp", "default", env=env)
    assert back.stdout == "octo/exp: no limit on jobs at once (the server's)\n"
    assert asyncio.run(limit()) is None
    wrong = labci("repos", "job-limit", "octo/exp", "many", env=env)
    assert wrong.returncode != 0
    assert "the limit is a number of jobs (0: none at all) or 'default', not 'many'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


SWEEP = {"strategy": {"matrix": {"seed": [0, 1, 2, 3, 4]}, "max-parallel": 1}}


async def test_a_capped_sweep_does_not_hide_the_jobs_behind_it(tmp_path, database_url, redis_url):
    """A sweep at its max-parallel heads its repository's queue: the jobs behind it go to
    the free slots, and time it is held back does not count toward the queue timeout."""
    settings = test_settings(database_url, redis_url, queue_timeout_s=60)
    async with server_context(settings) as sc:
        repo = await add_repo(sc, "octo/sweep")
        await add_runner(sc, "cpu-1", slots=3)
        sweep = await add_jobs(sc, repo, 5, matrix="sweep", **SWEEP)
        (later,) = await add_jobs(sc, repo, 1)
        placed = [await schedule_jobs(sc), await schedule_jobs(sc)]
        got = await states(sc, [*sweep, later])
        async with sc.sessions() as session, session.begin():
            held = await job_queries.get_job(session, sweep[1])
            held.pending_since = time.time() - 3600  # an hour behind its own cap
            session.add(held)
        assert await end_long_waits(sc, time.time()) == 0
        async with sc.sessions() as session:
            held = await job_queries.get_job(session, sweep[1])
    assert placed == [1, 1]
    assert [got[i][0] for i in sweep] == ["queued"] + ["pending"] * 4
    assert got[later] == ("queued", 1)
    assert held.state == "pending"
    assert held.pending_since > time.time() - 60  # its wait for a runner starts again


async def test_queue_heads_of_hundreds_of_shapes_and_repositories(
    tmp_path, database_url, redis_url
):
    """More (shape, repository) pairs with room than SQLite allows parts in one compound
    SELECT (500): read in several statements, every head found."""
    from labci_server.db.queries.queue import queue_heads

    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc, "octo/wide")
        (job_id,) = await add_jobs(sc, repo, 1)
        assert await schedule_jobs(sc) == 0  # indexed; no runner
        async with sc.sessions() as session:
            shape = (await job_queries.get_job(session, job_id)).shape
            wanted = [(f"[{n}]", repo, 1) for n in range(700)] + [(shape, repo, 1)]
            heads = await queue_heads(session, wanted)
    assert [(key, [j.id for j in jobs]) for key, jobs in heads.items()] == [
        ((shape, repo), [job_id])
    ]


async def test_a_plan_places_its_jobs_itself_or_leaves_them_to_the_pass_under_way(
    database_url, redis_url
):
    """With no pass under way in the worker, a plan's pass places its jobs at once, without
    a kick; with one under way, the plan kicks the loop (that pass may have read the queue
    before the plan's jobs were in it) and the kick is not lost."""
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await sc.redis.delete(SCHEDULE_WAKE_KEY)
        repo = await add_repo(sc, "octo/app")
        await add_runner(sc, "cpu-1", slots=2)
        passes = SchedulingPasses(sc)
        (first,) = await add_jobs(sc, repo, 1)
        await passes.now_or_kick()
        assert (await states(sc, [first]))[first] == ("queued", 1)
        assert await sc.redis.llen(SCHEDULE_WAKE_KEY) == 0  # placed here, nothing to wake
        (second,) = await add_jobs(sc, repo, 1)
        async with passes._running:  # a pass under way in this worker
            await passes.now_or_kick()
            assert (await states(sc, [second]))[second][0] == "pending"
        assert await sc.redis.llen(SCHEDULE_WAKE_KEY) == 1
        assert await passes.run() == 1  # the pass the kick asks for
        assert (await states(sc, [second]))[second] == ("queued", 1)
