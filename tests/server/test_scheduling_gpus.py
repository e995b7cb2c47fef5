"""GPUs at scheduling: each job gets exact ids of healthy GPUs no other job holds, on a
runner that has enough; the runner learns them with its job; an unfit GPU found by the
runner sends the attempt back (release) and gets no work until a heartbeat says it is fit."""

from __future__ import annotations

from test_planning import push_event

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.queries import jobs as job_queries
from labci_server.planning.planner import plan_event
from labci_server.results.uploads import release_job
from labci_server.scheduling.runners import (
    create_registration_token,
    fetch_job,
    heartbeat,
    register_runner,
)
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.ingest import store_event

TRAIN = """\
on: push
jobs:
  one: {runs-on: gpu, resources: {gpus: 1}, steps: [{run: train}]}
  two: {runs-on: gpu, resources: {gpus: 2}, steps: [{run: train}]}
  cpu: {runs-on: gpu, steps: [{run: eval}]}
"""


def inventory(*ids: str, unhealthy: str | None = None) -> dict:
    return {
        "gpus": [
            {
                "id": i,
                "model": "NVIDIA A100-SXM4-80GB",
                "memory_mib": 81920,
                "healthy": i != unhealthy,
                "problem": "left over" if i == unhealthy else None,
            }
            for i in ids
        ],
        "driver_version": "580.159.04",
        "cuda_version": "13.0",
        "source": "nvml",
        "problems": [],
    }


async def gpu_runner(sc, gpus: dict, slots: int = 4) -> dict:
    token = await create_registration_token(sc)
    answer = await register_runner(
        sc, registration_token=token, name="g", labels=["gpu"], slots=slots
    )
    await heartbeat(
        sc, token=answer["runner_token"], running=[], slots=slots, labels=["gpu"], gpus=gpus
    )
    return answer


async def jobs(sc) -> dict:
    async with sc.sessions() as session:
        return {j.job_key: j for j in await job_queries.jobs_of_runs(session, [1])}


async def test_gpus_are_assigned_by_exact_id_and_never_twice(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await gpu_runner(sc, inventory("0", "1", "2"))
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        assert await schedule_jobs(sc) == 3
        found = await jobs(sc)
        assert found["one"].gpu_ids == ["0"]
        assert found["two"].gpu_ids == ["1", "2"]
        assert found["cpu"].gpu_ids == []
        payload = await fetch_job(
            sc, token=runner["runner_token"], job_id=found["two"].id, attempt=1
        )
    assert payload["gpu_ids"] == ["1", "2"]


async def test_a_job_waits_while_its_gpus_are_held_or_unhealthy(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await gpu_runner(sc, inventory("0", "1", unhealthy="1"))
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        await schedule_jobs(sc)
        found = await jobs(sc)
        # One healthy GPU: `one` takes it; `two` (2 GPUs) must wait; `cpu` needs none.
        assert (found["one"].state, found["one"].gpu_ids) == ("queued", ["0"])
        assert found["two"].state == "pending"
        assert found["cpu"].state == "queued"
        # GPU 1 is fit again, but GPU 0 is held by `one`: still only one free GPU.
        await heartbeat(
            sc,
            token=runner["runner_token"],
            running=[],
            slots=4,
            labels=["gpu"],
            gpus=inventory("0", "1"),
        )
        assert await schedule_jobs(sc) == 0
        assert (await jobs(sc))["two"].state == "pending"


async def test_an_unfit_gpu_found_by_the_runner_sends_the_attempt_back(
    tmp_path, database_url, redis_url
):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        runner = await gpu_runner(sc, inventory("0", "1", "2"))
        event_id = await store_event(sc, push_event(repo.bare, sha, "d"))
        await plan_event(sc, event_id or 0)
        await schedule_jobs(sc)
        one = (await jobs(sc))["one"]
        payload = await fetch_job(sc, token=runner["runner_token"], job_id=one.id, attempt=1)
        await release_job(
            sc,
            job_id=one.id,
            attempt=1,
            token=payload["job_token"],
            reason="2 compute process(es) left on GPU 0",
        )
        again = (await jobs(sc))["one"]
        assert (again.state, again.attempt, again.gpu_ids) == ("pending", 2, None)
        assert again.reason == "not started: 2 compute process(es) left on GPU 0"
        # The runner's next heartbeat reports GPU 0 unhealthy: the new attempt avoids it.
        await heartbeat(
            sc,
            token=runner["runner_token"],
            running=[],
            slots=4,
            labels=["gpu"],
            gpus=inventory("0", "1", "2", unhealthy="0"),
        )
        async with sc.sessions() as session, session.begin():
            for job in await job_queries.jobs_of_runs(session, [1]):
                if job.job_key != "one":
                    job.state = "success"  # the others finished: their GPUs are free
                    session.add(job)
        await schedule_jobs(sc)
        assert (await jobs(sc))["one"].gpu_ids == ["1"]
