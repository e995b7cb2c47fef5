"""Benchmark of the run page on a big run: issue 13 measured 3.6 s for the page and 2.6 s
for the API of a run with 121,600 log lines, and ten concurrent views slowing /healthz to
1.75 s.

A run of 32 jobs × 3,800 lines (121,600 lines) is written to the database, then a real
`labci serve` answers: the page (`/runs/N`, which opens on each job's share of 20,000
lines), the API (`/api/v1/runs/N`, each job's first 5,000 lines: the unbudgeted read, as
a baseline in the same run), `/healthz` alone, and `/healthz` while ten clients load the
page without pause. Medians and p95 in milliseconds.

PostgreSQL when LABCI_TEST_DATABASE_URL is set (as in production), SQLite otherwise.
Run: `uv run python bench/bench_pages.py [--jobs N] [--lines N] [--requests K]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_loop import bench_redis, percentile  # noqa: E402

from helpers.stack import Stack  # noqa: E402
from labci_server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from labci_server.db.migrate import upgrade  # noqa: E402
from labci_server.db.models import Event, Job, Repository, Run  # noqa: E402
from labci_server.db.queries import jobs as job_queries  # noqa: E402

VIEWERS = 10


async def seed(database_url: str, jobs: int, lines: int) -> int:
    """One finished run of `jobs` jobs with `lines` log lines each; its id."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            repo = Repository(provider="github", full_name=f"bench/pages-{time.time_ns()}",
                              clone_url="x", private=False)  # fmt: skip
            session.add(repo)
            await session.flush()
            event = Event(delivery_id=f"bench-pages-{time.time_ns()}", provider="github",
                          kind="push", repository_id=repo.id or 0, commit_sha="a" * 40,
                          branch="main")  # fmt: skip
            session.add(event)
            await session.flush()
            run = Run(event_id=event.id or 0, repository_id=repo.id or 0, workflow_path="w",
                      workflow_name="sweep", commit_sha="a" * 40, trigger="push",
                      branch="main", state="finished", conclusion="success")  # fmt: skip
            session.add(run)
            await session.flush()
            run_id = run.id or 0
            job_ids = []
            for n in range(jobs):
                job = Job(run_id=run_id, job_key=f"seed {n}", workflow_job="seed",
                          context="labci/sweep/seed", spec={}, runs_on=["cpu"], timeout_s=60,
                          state="success")  # fmt: skip
                session.add(job)
                await session.flush()
                job_ids.append(job.id or 0)
        for job_id in job_ids:
            async with sessions() as session, session.begin():
                batch = [
                    {"seq": i, "step": 0, "stream": "stdout", "ts": 1.7e9 + i,
                     "text": f"epoch {i}: \x1b[32mloss\x1b[0m {1 / (i + 1):.6f} accuracy 0.9{i}"}
                    for i in range(lines)
                ]  # fmt: skip
                await job_queries.add_log_lines(session, job_id=job_id, attempt=1, lines=batch)
        return run_id
    finally:
        await engine.dispose()


def timed(client: httpx.Client, path: str, n: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path, headers={"accept": "text/html"})
        times.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return times, size


def figures_of(name: str, times: list[float]) -> dict[str, float]:
    return {
        f"{name}_ms_median": round(statistics.median(times), 1),
        f"{name}_ms_p95": round(percentile(times, 0.95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--lines", type=int, default=3_800)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as held:
        root = Path(tmp)
        redis_url = held.enter_context(bench_redis(root))
        (root / "stack").mkdir()
        database_url = os.environ.get("LABCI_TEST_DATABASE_URL") or f"sqlite:///{root / 'b.db'}"
        run_id = asyncio.run(seed(database_url, args.jobs, args.lines))
        stack = Stack(root=root / "stack", database_url=database_url, redis_url=redis_url,
                      github_url="http://127.0.0.1:9")  # fmt: skip
        try:
            stack.start_server()
            with httpx.Client(base_url=stack.url, timeout=120) as client:
                timed(client, f"/runs/{run_id}", 2)  # warm up
                page, page_bytes = timed(client, f"/runs/{run_id}", args.requests)
                api, api_bytes = timed(client, f"/api/v1/runs/{run_id}", args.requests)
                alone, _ = timed(client, "/healthz", 50)
                stop = threading.Event()

                def view() -> None:
                    with httpx.Client(base_url=stack.url, timeout=120) as own:
                        while not stop.is_set():
                            own.get(f"/runs/{run_id}").raise_for_status()

                viewers = [threading.Thread(target=view) for _ in range(VIEWERS)]
                for thread in viewers:
                    thread.start()
                time.sleep(1)  # every viewer has a request in flight
                loaded, _ = timed(client, "/healthz", 50)
                stop.set()
                for thread in viewers:
                    thread.join()
        finally:
            stack.stop_all()
    figures: dict[str, object] = {
        "jobs": args.jobs,
        "lines": args.jobs * args.lines,
        "database": "sqlite" if database_url.startswith("sqlite") else "postgresql",
        "page_mb": round(page_bytes / 1e6, 2),
        "api_mb": round(api_bytes / 1e6, 2),
        **figures_of("page", page),
        **figures_of("api", api),
        **figures_of("healthz_alone", alone),
        **figures_of(f"healthz_with_{VIEWERS}_page_viewers", loaded),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
