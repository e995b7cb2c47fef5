"""Benchmark of scheduling decisions (issue 14, item 8): the cost of placing a job with
100, 1,000 and 10,000 jobs queued and 200 runners, on PostgreSQL.

Issue 14 measured the scheduler before it decided per shape: a pass placing one job cost
55 ms with 100 jobs queued, 182 ms with 1,000 and 193 ms with 10,000, a pass placing
nothing as much, and a job behind 500 unplaceable ones was never placed.

For each queue length, a fresh database holds 200 online runners (100 CPU machines with 1
slot, 100 GPU machines with 8 GPUs and 4 slots) all busy, and the queue: jobs of five
repositories in four shapes (CPU; 1, 2 and 8 GPUs), plus waiting jobs no free runner
fits. Then, timed with the real `schedule_jobs` against the real database and Redis:

- one decision: one runner's job finishes and one pass places one job in its slot
  (repeated; median and p95 of the pass);
- indexing: each new pending job is read once and given its shape (in batches of 2,000),
  timed over the whole queue;
- nothing to place: a pass while every runner is busy (median of NOTHING_PASSES);
- a full pass: every runner freed at once, one pass places what fits — its time divided
  by the jobs it placed is the cost per assignment;
- baseline, in the same run: a pass over an empty queue (the fixed cost of reading the
  fleet), and one `SELECT 1` round trip.

PostgreSQL from LABCI_TEST_DATABASE_URL (a scratch database is created beside it and
dropped after), Redis from LABCI_REDIS_URL or an embedded one.
Run: `uv run python bench/bench_scheduler.py [--queued 100,1000,10000] [--decisions 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_loop import bench_redis, percentile  # noqa: E402

from helpers.server import server_context, test_settings  # noqa: E402
from labci_server.db.engine import async_url  # noqa: E402
from labci_server.db.models import Event, Job, Repository, Run, Runner  # noqa: E402
from labci_server.scheduling.scheduler import index_new_pending, schedule_jobs  # noqa: E402
from labci_server.scheduling.shapes import shape_of  # noqa: E402

RUNNERS = 200
SHAPES = [(["cpu"], 0), (["gpu"], 1), (["gpu"], 2), (["gpu"], 8)]


def spec(gpus: int) -> dict:
    return {"job": {"resources": {"gpus": gpus}} if gpus else {}}


NOTHING_PASSES = 7


async def scratch_database(base_url: str) -> tuple[str, str]:
    """A new database on the server of `base_url`: (its URL, its name)."""
    name = f"labci_bench_sched_{time.time_ns()}"
    admin = create_async_engine(async_url(base_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    head, _, _ = async_url(base_url).rpartition("/")
    return f"{head}/{name}", name


async def drop_database(base_url: str, name: str) -> None:
    admin = create_async_engine(async_url(base_url), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def seed(sc, queued: int) -> None:
    """200 busy runners and `queued` pending jobs over 5 repositories and 4 shapes."""
    now = time.time()
    async with sc.sessions() as session, session.begin():
        runners = []
        for i in range(RUNNERS):
            gpu = i >= RUNNERS // 2
            inventory = {"gpus": [{"id": str(g), "memory_mib": 81920} for g in range(8)]}
            runners.append(Runner(name=f"r{i}", labels=["gpu"] if gpu else ["cpu"],
                                  slots=4 if gpu else 1, token_hash=f"t{i}",
                                  queue_name=f"labci:runner:bench-{i}",
                                  gpus=inventory if gpu else None,
                                  resources={"cpus": 64, "memory_bytes": 512 * 2**30},
                                  last_heartbeat_at=now))  # fmt: skip
        session.add_all(runners)
        repos = [Repository(provider="github", full_name=f"bench/r{i}", clone_url="x")
                 for i in range(5)]  # fmt: skip
        session.add_all(repos)
        await session.flush()
        runs = []
        for repo in repos:
            event = Event(delivery_id=f"d{repo.id}", provider="github", kind="push",
                          repository_id=repo.id or 0, commit_sha="a" * 40, branch="b")  # fmt: skip
            session.add(event)
            await session.flush()
            run = Run(event_id=event.id or 0, repository_id=repo.id or 0, workflow_path="w",
                      workflow_name="w", commit_sha="a" * 40, trigger="push", branch="b",
                      state="running")  # fmt: skip
            session.add(run)
            runs.append(run)
        await session.flush()
        # Every runner busy: a running job in each slot (the GPU machines' 8 GPUs held).
        busy = []
        for r in runners:
            for slot in range(r.slots):
                gpu_ids = [str(slot * 2), str(slot * 2 + 1)] if r.gpus else []
                job = Job(run_id=runs[0].id or 0, job_key=f"busy {r.id} {slot}",
                          context="c", spec=spec(len(gpu_ids)), runs_on=r.labels,
                          timeout_s=600, state="running", runner_id=r.id,
                          gpu_ids=gpu_ids, started_at=now)  # fmt: skip
                job.shape = shape_of(job, trusted=True).key()  # indexed while it was pending
                busy.append(job)
        session.add_all(busy)
        pending = []
        for n in range(queued):
            labels, gpus = SHAPES[n % len(SHAPES)]
            pending.append(Job(run_id=runs[n % len(runs)].id or 0, job_key=f"q {n}",
                               context="c", spec=spec(gpus), runs_on=labels, timeout_s=600))  # fmt: skip
        session.add_all(pending)
    async with sc.sessions() as session:
        await session.exec(text("ANALYZE"))  # type: ignore[call-overload]


async def free_runners(sc, runner_ids: list[int]) -> None:
    async with sc.sessions() as session, session.begin():
        await session.exec(  # type: ignore[call-overload]
            update(Job)
            .where(col(Job.runner_id).in_(runner_ids), col(Job.state).in_(["queued", "running"]))
            .values(state="success", finished_at=time.time())
        )


async def measure(database_url: str, redis_url: str, queued: int, decisions: int) -> dict:
    settings = test_settings(database_url, redis_url, lease_s=3600.0)
    async with server_context(settings) as sc:
        await sc.redis.flushdb()
        await seed(sc, queued)
        start = time.perf_counter()
        while await index_new_pending(sc, time.time()):  # each job once, in batches
            pass
        index_ms = (time.perf_counter() - start) * 1000
        nothing = []
        for _ in range(NOTHING_PASSES):  # the first is cold (statement caches): a median
            start = time.perf_counter()
            assert await schedule_jobs(sc) == 0
            nothing.append((time.perf_counter() - start) * 1000)
        one = []
        for i in range(decisions):
            await free_runners(sc, [1 + i % (RUNNERS // 2)])  # a CPU machine's job ends
            start = time.perf_counter()
            placed = await schedule_jobs(sc)
            one.append((time.perf_counter() - start) * 1000)
            assert placed == 1, (i, placed)
        await free_runners(sc, list(range(1, RUNNERS + 1)))
        start = time.perf_counter()
        placed = await schedule_jobs(sc)
        full_ms = (time.perf_counter() - start) * 1000
        await free_runners(sc, list(range(1, RUNNERS + 1)))
    return {
        "queued": queued,
        "one_median_ms": statistics.median(one),
        "one_p95_ms": percentile(one, 0.95),
        "nothing_ms": statistics.median(nothing),
        "full_ms": full_ms,
        "full_placed": placed,
        "per_assignment_ms": full_ms / max(placed, 1),
        "index_ms": index_ms,
    }


async def baseline(database_url: str, redis_url: str) -> dict:
    settings = test_settings(database_url, redis_url, lease_s=3600.0)
    async with server_context(settings) as sc:
        empty = []
        for _ in range(30):
            start = time.perf_counter()
            await schedule_jobs(sc)
            empty.append((time.perf_counter() - start) * 1000)
        trips = []
        async with sc.sessions() as session:
            for _ in range(100):
                start = time.perf_counter()
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
                trips.append((time.perf_counter() - start) * 1000)
    return {"empty_pass_ms": statistics.median(empty), "select1_ms": statistics.median(trips)}


async def main_async(args: argparse.Namespace, base_url: str, redis_url: str) -> None:
    rows = []
    for queued in args.queued:
        url, name = await scratch_database(base_url)
        try:
            rows.append(await measure(url, redis_url, queued, args.decisions))
        finally:
            await drop_database(base_url, name)
    url, name = await scratch_database(base_url)
    try:
        base = await baseline(url, redis_url)
    finally:
        await drop_database(base_url, name)
    print(f"scheduling with {RUNNERS} runners on PostgreSQL (ms)")
    print(
        "queued   one decision: median  p95   nothing to place   full pass (placed)  per assignment"
    )
    for row in rows:
        print(
            f"{row['queued']:>6}   {row['one_median_ms']:>20.1f} {row['one_p95_ms']:>5.1f}"
            f"   {row['nothing_ms']:>16.1f}   {row['full_ms']:>9.1f} ({row['full_placed']:>3})"
            f"   {row['per_assignment_ms']:>14.2f}   {row['index_ms']:>18.0f}"
        )
    print(
        f"baseline: a pass over an empty queue {base['empty_pass_ms']:.1f} ms; "
        f"SELECT 1 {base['select1_ms']:.2f} ms"
    )


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--queued", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 10000]
    )
    parser.add_argument("--decisions", type=int, default=20)  # ≤ the CPU jobs of 100
    args = parser.parse_args()
    base_url = os.environ.get("LABCI_TEST_DATABASE_URL")
    if not base_url or not base_url.startswith("postgresql"):
        sys.exit("set LABCI_TEST_DATABASE_URL to a PostgreSQL database: this benchmark is for it")
    with tempfile.TemporaryDirectory() as tmp, bench_redis(Path(tmp)) as redis_url:
        asyncio.run(main_async(args, base_url, redis_url))


if __name__ == "__main__":
    main()
