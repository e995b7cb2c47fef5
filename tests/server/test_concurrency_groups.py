"""`concurrency:` groups (issue 14, item 3) on real git repositories (the local forge), the
real database and Redis: planned from real workflow files, placed by the real scheduler.

A group has at most one member in progress and one waiting: a newer member cancels the one
waiting, and with `cancel-in-progress` the one in progress; the scheduler starts no member
while another is in progress, for pushes as well as pull requests. And what the status
of a job that waits says."""

from __future__ import annotations

import asyncio
import time

from helpers.gitrepo import make_repo
from helpers.server import server_context, test_settings
from labci_server.db.models import Job, Run, Runner
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.runs import jobs_of_run, runs_for_event
from labci_server.planning.planner import plan_event
from labci_server.results.ingest import finish_job
from labci_server.scheduling.order import Assignment
from labci_server.scheduling.scheduler import _claim_and_enqueue, index_new_pending, schedule_jobs
from labci_server.scheduling.shapes import Shape
from labci_server.scheduling.waiting import why_waiting
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

RUN_GROUP = """\
name: ci
on: push
concurrency: ${{ github.workflow }}-${{ github.ref }}
jobs:
  train:
    runs-on: cpu
    steps: [{run: "true"}]
"""

CANCEL_OFF_MAIN = """\
name: ci
on: push
concurrency:
  group: ${{ github.workflow }}-${{ github.ref }}
  cancel-in-progress: ${{ github.ref_name != 'main' }}
jobs:
  train:
    runs-on: cpu
    steps: [{run: "true"}]
"""

PER_PULL_REQUEST = """\
name: ci
on: push
concurrency:
  group: ci-${{ github.head_ref || github.run_id }}
  cancel-in-progress: true
jobs:
  train:
    runs-on: cpu
    steps: [{run: "true"}]
"""

JOB_GROUP = """\
name: ci
on: push
jobs:
  train:
    runs-on: cpu
    concurrency: the-gpu-box
    steps: [{run: "true"}]
  lint:
    runs-on: cpu
    steps: [{run: "true"}]
"""

PLAIN = """\
name: ci
on: push
jobs:
  train:
    runs-on: cpu
    steps: [{run: "true"}]
"""

MATRIX_SHARING_A_GROUP = """\
name: ci
on: push
jobs:
  train:
    runs-on: cpu
    concurrency: one-at-a-time
    strategy: {matrix: {seed: [1, 2, 3]}}
    steps: [{run: "true"}]
"""


def settings(database_url: str, redis_url: str):
    # Runners stay online however long a loaded machine takes between two passes.
    return test_settings(database_url, redis_url, lease_s=3600.0)


class Pushes:
    """Commits pushed to a real repository, each stored and planned like a delivery."""

    def __init__(self, sc, tmp_path, workflow: str) -> None:
        self.sc = sc
        self.repo = make_repo(tmp_path)
        self.workflow = workflow
        self.count = 0

    async def push(self, branch: str = "main") -> tuple[int, list[Job]]:
        """(run id, its jobs) of a new commit on `branch`."""
        self.count += 1
        sha = self.repo.commit(
            {".labci/ci.yml": self.workflow, "n.txt": str(self.count)}, branch=branch
        )
        event = NewEvent(delivery_id=f"d-{self.count}", provider="git", kind="push",
                         action=None, repo_full_name=str(self.repo.bare),
                         clone_url=str(self.repo.bare), commit_sha=sha, branch=branch)  # fmt: skip
        event_id = await store_event(self.sc, event)
        assert event_id is not None
        (run_id,) = await plan_event(self.sc, event_id)
        async with self.sc.sessions() as session:
            (run,) = await runs_for_event(session, event_id)
            return run_id, await jobs_of_run(session, run.id or 0)


async def add_runner(sc, name: str, *, slots: int) -> int:
    async with sc.sessions() as session, session.begin():
        runner = Runner(name=name, labels=["cpu"], slots=slots, token_hash=name,
                        queue_name=f"labci:runner:{name}", last_heartbeat_at=time.time())  # fmt: skip
        session.add(runner)
        await session.flush()
        return runner.id or 0


async def jobs_of(sc, run_id: int) -> list[Job]:
    async with sc.sessions() as session:
        return await jobs_of_run(session, run_id)


async def states(sc, run_id: int) -> list[str]:
    return [job.state for job in await jobs_of(sc, run_id)]


async def succeed(sc, run_id: int) -> None:
    """The run's placed jobs report success, as a runner's final report does."""
    for placed in await jobs_of(sc, run_id):
        if placed.state not in ("queued", "running"):
            continue
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, placed.id or 0, for_update=True)
            await finish_job(session, job, outcome="success", reason=None, metrics=None,
                             run_url=sc.run_url(run_id))  # fmt: skip


async def waiting_reason(sc, run_id: int) -> str:
    async with sc.sessions() as session:
        run = await session.get(Run, run_id)
        jobs = await jobs_of_run(session, run_id)
        return (await why_waiting(session, run, jobs, settings=sc.settings))[jobs[0].id or 0]


async def latest_status(sc, run_id: int, context: str) -> tuple[str, str]:
    async with sc.sessions() as session:
        run = await session.get(Run, run_id)
        messages = await outbox_queries.messages_for_commit(
            session, repository_id=run.repository_id, commit_sha=run.commit_sha
        )
    found = [m for m in messages if m.context == context]
    return found[-1].state, found[-1].description


async def test_a_run_waits_for_its_group_and_a_newer_one_cancels_it(
    tmp_path, database_url, redis_url
):
    """Without cancel-in-progress: the second push waits for the first (though a slot is
    free), a third cancels the second, and runs once the first finishes."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, RUN_GROUP)
        first, _ = await pushes.push()
        assert await schedule_jobs(sc) == 1
        second, _ = await pushes.push()
        assert await schedule_jobs(sc) == 0  # a free slot, but the group is in progress
        group = "ci-refs/heads/main"
        held = f"waiting for run {first}, in progress in concurrency group '{group}'"
        assert await waiting_reason(sc, second) == held
        assert await latest_status(sc, second, "labci/ci/train") == ("pending", held)
        third, _ = await pushes.push()
        assert await states(sc, second) == ["cancelled"]
        (job,) = await jobs_of(sc, second)
        assert job.reason == f"superseded by run {third} in concurrency group '{group}'"
        assert await latest_status(sc, second, "labci/ci/train") == (
            "error",
            f"cancelled: {job.reason}",
        )
        assert await states(sc, first) == ["queued"]  # in progress: not cancelled
        assert await schedule_jobs(sc) == 0
        await succeed(sc, first)
        assert await schedule_jobs(sc) == 1
        assert await states(sc, third) == ["queued"]


async def test_cancel_in_progress_as_a_condition(tmp_path, database_url, redis_url):
    """`cancel-in-progress: ${{ github.ref_name != 'main' }}`: a branch's new push cancels
    its run in progress; the default branch's waits for its own."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, CANCEL_OFF_MAIN)
        main_first, _ = await pushes.push("main")
        dev_first, _ = await pushes.push("dev")
        assert await schedule_jobs(sc) == 2
        main_second, _ = await pushes.push("main")
        dev_second, _ = await pushes.push("dev")
        assert await states(sc, main_first) == ["queued"]
        assert await states(sc, dev_first) == ["cancelled"]
        (job,) = await jobs_of(sc, dev_first)
        assert job.reason == (
            f"superseded by run {dev_second} in concurrency group 'ci-refs/heads/dev'"
        )
        assert await schedule_jobs(sc) == 1
        assert await states(sc, dev_second) == ["queued"]
        assert await states(sc, main_second) == ["pending"]


async def test_a_group_that_renders_empty_is_no_group(tmp_path, database_url, redis_url):
    """`ci-${{ github.head_ref || github.run_id }}`: on pushes each run is its own group,
    so neither waits for nor cancels the other."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, PER_PULL_REQUEST)
        first, _ = await pushes.push()
        second, _ = await pushes.push()
        async with sc.sessions() as session:
            groups = [(await session.get(Run, r)).concurrency_group for r in (first, second)]
        assert groups == [f"ci-{first}", f"ci-{second}"]
        assert await schedule_jobs(sc) == 2


async def test_a_job_level_group_holds_only_its_jobs(tmp_path, database_url, redis_url):
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, JOB_GROUP)
        first, _ = await pushes.push()
        assert await schedule_jobs(sc) == 2
        second, _ = await pushes.push()
        assert await schedule_jobs(sc) == 1  # lint; train waits for the first push's
        assert await states(sc, second) == ["pending", "queued"]
        assert await waiting_reason(sc, second) == (
            "waiting for a job in progress in concurrency group 'the-gpu-box'"
        )
        third, _ = await pushes.push()
        assert await states(sc, second) == ["cancelled", "queued"]
        (train, _) = await jobs_of(sc, second)
        assert train.reason == f"superseded by run {third} in concurrency group 'the-gpu-box'"
        await succeed(sc, first)
        assert await schedule_jobs(sc) == 2
        assert await states(sc, third) == ["queued", "queued"]


async def test_a_matrix_sharing_a_group_runs_one_at_a_time(tmp_path, database_url, redis_url):
    """The instances of one run never cancel each other: they take turns."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, MATRIX_SHARING_A_GROUP)
        run, _ = await pushes.push()
        for turn in range(3):
            assert await schedule_jobs(sc) == 1
            assert (await states(sc, run)).count("queued") == 1
            await succeed(sc, run)
            assert (await states(sc, run)).count("success") == turn + 1
        assert await schedule_jobs(sc) == 0


async def test_racing_passes_start_one_member_of_a_group(tmp_path, database_url, redis_url):
    """Two runs of a group wait, neither in progress (planned at once, say): four passes
    racing place one of them; the other waits."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        await add_runner(sc, "cpu-2", slots=4)
        pushes = Pushes(sc, tmp_path, RUN_GROUP)
        first, _ = await pushes.push()
        async with sc.sessions() as session, session.begin():
            # A second run in the group that the first did not see (a concurrent plan).
            original = await session.get(Run, first)
            twin = Run(**original.model_dump(exclude={"id", "workflow_path", "dedupe_key"}),
                       workflow_path=".labci/twin.yml")  # fmt: skip
            session.add(twin)
            await session.flush()
            (job,) = await jobs_of_run(session, first)
            session.add(Job(**job.model_dump(exclude={"id", "run_id"}), run_id=twin.id or 0))
        placed = await asyncio.gather(*(schedule_jobs(sc) for _ in range(4)))
        assert sum(placed) == 1
        assert sorted([*await states(sc, first), *await states(sc, twin.id or 0)]) == [
            "pending",
            "queued",
        ]


async def test_a_waiting_jobs_status_says_why_and_then_where_it_runs(
    tmp_path, database_url, redis_url
):
    """Item 4: the status of a job a pass leaves waiting gives the reason and its place;
    once placed, where. A job placed at once keeps its first `queued`."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=1)
        pushes = Pushes(sc, tmp_path, PLAIN)
        first, _ = await pushes.push()
        second, _ = await pushes.push()
        third, _ = await pushes.push()
        assert await schedule_jobs(sc) == 1
        context = "labci/ci/train"
        assert await latest_status(sc, first, context) == ("pending", "queued")
        assert await latest_status(sc, second, context) == (
            "pending",
            "waiting for a free runner with [cpu] (1 online); 1st in the queue",
        )
        assert await latest_status(sc, third, context) == (
            "pending",
            "waiting for a free runner with [cpu] (1 online); 2nd in the queue",
        )
        await succeed(sc, first)
        assert await schedule_jobs(sc) == 1
        assert await latest_status(sc, second, context) == ("pending", "placed on cpu-1")


SKIPPED_DEPLOY = """\
name: ci
on: push
concurrency: ci-${{ github.ref }}
jobs:
  train:
    runs-on: cpu
    steps: [{run: "true"}]
  deploy:
    runs-on: cpu
    if: github.ref_name == 'main'
    concurrency: production
    steps: [{run: "true"}]
"""


async def test_a_skipped_job_neither_holds_nor_cancels(tmp_path, database_url, redis_url):
    """A job its `if:` skips is no member: the run it belongs to is not in progress
    because of it (its group still waits for the run before), and it cancels no other
    run's job in its job-level group."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, SKIPPED_DEPLOY)
        on_main, _ = await pushes.push("main")
        first, _ = await pushes.push("dev")  # deploy skipped
        assert await states(sc, on_main) == ["pending", "pending"]  # deploy not cancelled
        assert await states(sc, first) == ["pending", "skipped"]
        assert await schedule_jobs(sc) == 3
        second, _ = await pushes.push("dev")  # deploy skipped again
        assert await schedule_jobs(sc) == 0  # the first dev run is in progress
        assert await states(sc, second) == ["pending", "skipped"]
        third, _ = await pushes.push("dev")
        assert await states(sc, second) == ["cancelled", "skipped"]  # it was only waiting
        await succeed(sc, first)
        assert await schedule_jobs(sc) == 1
        assert await states(sc, third) == ["queued", "skipped"]


async def test_a_cancelled_member_holds_its_group_until_its_runner_stops_it(
    tmp_path, database_url, redis_url
):
    """cancel-in-progress: the newer run starts once the older one's runner has reported
    its interrupted step (its attempt's token given back), not while it is still running."""
    async with server_context(settings(database_url, redis_url)) as sc:
        await add_runner(sc, "cpu-1", slots=4)
        pushes = Pushes(sc, tmp_path, CANCEL_OFF_MAIN)
        first, _ = await pushes.push("dev")
        assert await schedule_jobs(sc) == 1
        (running,) = await jobs_of(sc, first)
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, running.id or 0)
            job.state, job.job_token_hash = "running", "the attempt's token"  # as a runner's
            session.add(job)
        second, _ = await pushes.push("dev")
        assert await states(sc, first) == ["cancelled"]
        assert await schedule_jobs(sc) == 0  # its runner is still interrupting the step
        assert await waiting_reason(sc, second) == (
            f"waiting for run {first}, in progress in concurrency group 'ci-refs/heads/dev'"
        )
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, running.id or 0)
            job.job_token_hash = None  # the runner reported: the step has stopped
            session.add(job)
        assert await schedule_jobs(sc) == 1
        assert await states(sc, second) == ["queued"]


async def test_the_claim_checks_the_group_again_under_its_lock(tmp_path, database_url, redis_url):
    """Two passes that each read the group free, from snapshots taken before either
    claimed, chose a member each (two instances of a matrix sharing a group, on two
    runners): the claim, which re-reads the group with the repository's row locked, lets
    the second pass place nothing. The plan-level check alone would let both through."""
    async with server_context(settings(database_url, redis_url)) as sc:
        runner_ids = [await add_runner(sc, f"cpu-{n}", slots=1) for n in (1, 2)]
        pushes = Pushes(sc, tmp_path, MATRIX_SHARING_A_GROUP)
        run, _ = await pushes.push()
        await index_new_pending(sc, time.time())  # shapes, as a pass indexes them
        async with sc.sessions() as session:
            first, second, _ = await jobs_of_run(session, run)
            runners = [await session.get(Runner, r) for r in runner_ids]
        snapshots = [
            Assignment(job=job, shape=Shape.from_key(job.shape or ""), runner=runner, gpu_ids=[])
            for job, runner in ((first, runners[0]), (second, runners[1]))
        ]
        assert await _claim_and_enqueue(sc, snapshots[:1], time.time()) == {first.id}
        assert await _claim_and_enqueue(sc, snapshots[1:], time.time()) == set()
        assert (await states(sc, run)).count("queued") == 1
