"""Planning alone (issue 14, item 8): how many push events one process plans per second,
with nothing else of the stack running — the planner's own ceiling, next to
`bench_f1.py --mode capacity`, where the same worker also schedules, posts statuses and
shares the machine with the server, the runners and 200 heartbeating runners.

N signed-push events (bench_f1's: one new commit each on a branch of its own, a one-job
workflow) are stored, then planned in this process by the worker's own task
(`plan_event_task`: the repository's facts, the workflow files from the GitHub stand-in,
the run, its job and its `pending` status), `--concurrency` at a time as `labci worker`'s
arq slots would (20). `--preread` reads every commit's files from the stand-in first and
hands them out again, so the figure leaves the forge's REST call out (it is latency on the
real GitHub, and the stand-in's `git` processes are CPU of this machine); without it, each
plan reads its files from the stand-in, in this process. Also printed: SQL statements per
plan, counted at the engine.

PostgreSQL from LABCI_TEST_DATABASE_URL (a scratch database beside it, dropped after),
Redis from LABCI_REDIS_URL or an embedded one.
Run: `uv run python bench/bench_planner.py [--events 300] [--concurrency 20] [--preread]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_f1 import NAME, OWNER, make_commits  # noqa: E402
from bench_loop import bench_redis  # noqa: E402
from bench_scheduler import drop_database, scratch_database  # noqa: E402

from forge_standin import StandinServer, create_bare_repo  # noqa: E402
from helpers.server import server_context, test_settings  # noqa: E402
from labci_server.db.queries.repositories import get_repository  # noqa: E402
from labci_server.forge.base import WorkflowFiles  # noqa: E402
from labci_server.forge.github import GitHubForge  # noqa: E402
from labci_server.webhooks.github import NewEvent  # noqa: E402
from labci_server.webhooks.ingest import store_event  # noqa: E402
from labci_server.workers import plan_event_task  # noqa: E402

TOKEN = "bench-token"


class PrereadForge(GitHubForge):
    """The real GitHub client, whose workflow files can be read ahead (`preread`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ahead: dict[str, WorkflowFiles] = {}

    async def read_workflow_files(self, repo: Any, commit_sha: str) -> WorkflowFiles:
        if commit_sha in self.ahead:
            return self.ahead[commit_sha]
        return await super().read_workflow_files(repo, commit_sha)

    async def preread(self, repo: Any, shas: list[str]) -> None:
        for sha in shas:
            self.ahead[sha] = await super().read_workflow_files(repo, sha)


async def measure(args: argparse.Namespace, database_url: str, redis_url: str, root: Path) -> dict:
    statements: Counter[str] = Counter()
    counting = False

    @sa_event.listens_for(Engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if counting:
            statements[statement.split()[0].upper()] += 1

    with StandinServer(root, tokens=[TOKEN]) as server:
        repo = create_bare_repo(root, OWNER, NAME)
        commits = make_commits(repo, args.events + 1)
        settings = test_settings(
            database_url, redis_url, github_api_url=server.url, github_token=TOKEN
        )
        async with httpx.AsyncClient() as http:
            forge = PrereadForge(http, api_url=server.url, token=TOKEN)
            async with server_context(settings, forges={"github": forge}) as sc:
                ids = [
                    await store_event(sc, push_event(repo.clone_url, i, branch, sha))
                    for i, (branch, sha) in enumerate(commits)
                ]
                ctx = {"labci": sc, "job_try": 1}
                await plan_event_task(ctx, ids[0])  # warm: facts read, imports done
                if args.preread:
                    async with sc.sessions() as session:
                        row = await get_repository(session, 1)
                    await forge.preread(row, [sha for _, sha in commits[1:]])
                slots = asyncio.Semaphore(args.concurrency)

                async def plan(event_id: int) -> None:
                    async with slots:
                        await plan_event_task(ctx, event_id)

                counting = True
                wall, cpu = time.perf_counter(), time.process_time()
                await asyncio.gather(*(plan(event_id) for event_id in ids[1:]))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                counting = False
    n = len(ids) - 1
    return {
        "events": n,
        "concurrency": args.concurrency,
        "preread": args.preread,
        "planned_per_s": round(n / wall, 1),
        # This process's CPU: the planner's, and the stand-in's when it is read during the run.
        "cpu_ms_per_plan": round(cpu / n * 1000, 2),
        "sql_statements_per_plan": {k: round(v / n, 2) for k, v in sorted(statements.items())},
    }


def push_event(clone_url: str, i: int, branch: str, sha: str) -> NewEvent:
    return NewEvent(
        delivery_id=f"planner-{i}",
        provider="github",
        kind="push",
        action=None,
        repo_full_name=f"{OWNER}/{NAME}",
        clone_url=clone_url,
        commit_sha=sha,
        branch=branch,
        base_sha="0" * 40,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--preread", action="store_true", help="leave the REST call out")
    args = parser.parse_args()
    base_url = os.environ.get("LABCI_TEST_DATABASE_URL", "")
    if not base_url.startswith("postgresql"):
        sys.exit("set LABCI_TEST_DATABASE_URL to a PostgreSQL database")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, bench_redis(Path(tmp)) as redis_url:
        database_url, name = asyncio.run(scratch_database(base_url))
        root = Path(tmp) / "repos"
        root.mkdir()
        try:
            figures = asyncio.run(measure(args, database_url, redis_url, root))
        finally:
            asyncio.run(drop_database(base_url, name))
    figures["loadavg_before"] = [round(x, 2) for x in load]
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
