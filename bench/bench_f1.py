"""Reliability F1 and planning throughput (issue 14, item 8, "Tests and benchmarks").

F1 (`--mode f1`, the default): 1,000 distinct signed push webhooks (one new commit on a
branch of its own each, a one-job workflow running `true`) spread evenly over 60 s, while
4 real process-executor runners take the jobs and 200 more registered runners heartbeat at
a runner's interval with labels no job asks for. Then it waits until every run finishes
and the outbox is drained, and checks: every event planned (none lost), every job ran once
(attempt 1, success, one step, a record), and each commit's statuses at the stand-in are
one `success` after at most one `pending` (an unsent `pending` is superseded by design),
no duplicate, nothing dead-lettered, and the stand-in's rules held (≤ 1 mutation in flight
per token, none faster than the pacing interval, no request outside GitHub's description).
Figures: ingest answer latency, planning rate (peak and overall, from the events'
received_at/planned_at), plan lag, webhook → job finished, drain after the last webhook.

Planning capacity (`--mode capacity`): the same stack, but `labci worker` is stopped while
N webhooks are stored; then it starts, and the time until all N are planned gives the
events planned per second (target ≥ 100/s).

Real processes: PostgreSQL-backed `labci serve` (`--workers N` with `--serve-workers N`),
`labci worker`, `labci-runner start` ×4; the GitHub stand-in (in this process, to read
what it recorded) serves a real bare repository; Redis from LABCI_REDIS_URL (its database
is flushed) or an embedded redis-server. PostgreSQL: a scratch database beside
LABCI_TEST_DATABASE_URL, dropped after. The outbox's GitHub pacing is the stack's, scaled
down 20× (0.05 s between mutations), so 2,000 statuses can drain in minutes.

Run: `uv run python bench/bench_f1.py [--mode f1|capacity] [--events 1000] [--over-s 60]`.
Exits non-zero, saying which check failed, when one does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_loop import bench_redis, percentile  # noqa: E402
from bench_scheduler import drop_database, scratch_database  # noqa: E402
from idle_fleet import FleetReport, IdleFleet, register_fleet  # noqa: E402

from forge_standin import StandinServer, create_bare_repo, headers, push_payload  # noqa: E402
from helpers.stack import SECRET, Stack  # noqa: E402
from labci_server.db.engine import async_url  # noqa: E402

OWNER, NAME = "bench", "f1"
WORKFLOW = """\
name: f1
on: push
jobs:
  noop:
    runs-on: cpu
    steps:
      - run: "true"
"""
HEARTBEAT_INTERVAL_S = 2.0  # labci-runner's default LABCI_RUNNER_HEARTBEAT_INTERVAL_S
PACING_S = 0.05  # the stack's LABCI_OUTBOX_MIN_INTERVAL_S


class CheckFailed(Exception):
    """A property F1 promises did not hold."""


def make_commits(repo: Any, count: int) -> list[tuple[str, str]]:
    """`count` commits on branches of their own, each on top of the workflow commit, made
    with one `git fast-import`; (branch, sha) each."""
    base = repo.commit({".labci/f1.yml": WORKFLOW}, message="workflow")
    stream = []
    for i in range(count):
        content = f"{i}\n".encode()
        message = f"f1 {i}\n".encode()
        stream.append(
            b"commit refs/heads/f1/%d\nmark :%d\ncommitter Bench <b@example.com> %d +0000\n"
            b"data %d\n%s" % (i, i + 1, 1_700_000_000 + i, len(message), message)
            + b"from %s\nM 100644 inline n.txt\ndata %d\n%s\n" % (base.encode(), len(content), content)
        )  # fmt: skip
    marks = repo.work / "marks"
    subprocess.run(
        ["git", "fast-import", "--quiet", f"--export-marks={marks}"],
        cwd=repo.bare,
        input=b"".join(stream),
        check=True,
    )
    shas = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark[1:]) - 1] = sha
    return [(f"f1/{i}", shas[i]) for i in range(count)]


@dataclass
class Sent:
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0


async def send_webhooks(url: str, repo: Any, commits: list[tuple[str, str]], over_s: float) -> Sent:
    """One push per commit, the i-th at start + i·over_s/len(commits), each on its own task
    so a slow answer does not delay the next."""
    sent = Sent()
    # Each delivery on a connection of its own, as GitHub sends them: a kept-alive one
    # can be closed by the server just as the next request goes out (a client-side race).
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int, branch: str, sha: str, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            payload = push_payload(
                OWNER, NAME, repo.clone_url, f"refs/heads/{branch}", "0" * 40, sha
            )
            body = json.dumps(payload).encode()
            start = time.monotonic()
            try:
                answer = await client.post(
                    "/webhooks/github", content=body, headers=headers("push", f"f1-{i}", body, SECRET)
                )  # fmt: skip
            except httpx.HTTPError as exc:
                sent.failures.append(f"webhook {i}: {exc!r}")
                return
            sent.latencies_s.append(time.monotonic() - start)
            if answer.status_code != 202:
                sent.failures.append(f"webhook {i}: {answer.status_code} {answer.text[:200]}")

        step = over_s / max(1, len(commits))
        start = time.monotonic() + 0.5
        sent.first_at = time.time() + 0.5
        async with asyncio.TaskGroup() as group:
            for i, (branch, sha) in enumerate(commits):
                group.create_task(one(i, branch, sha, start + i * step))
        sent.last_at = time.time()
    return sent


async def query(database_url: str, sql: str) -> list[dict[str, Any]]:
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def progress(database_url: str) -> dict[str, int]:
    (row,) = await query(
        database_url,
        "SELECT (SELECT count(*) FROM events WHERE state = 'received') AS unplanned,"
        " (SELECT count(*) FROM events WHERE state = 'planned') AS planned,"
        " (SELECT count(*) FROM jobs WHERE state IN ('pending', 'queued', 'running'))"
        "   AS unfinished,"
        " (SELECT count(*) FROM outbox WHERE status = 'pending') AS outbox",
    )
    return row


async def wait_drained(database_url: str, events: int, timeout_s: float) -> float:
    """Wait until `events` events are planned, every job finished and the outbox empty;
    the time it became so."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        now = await progress(database_url)
        if now["planned"] >= events and not now["unfinished"] and not now["outbox"]:
            return time.time()
        if now != last:
            print(f"  waiting: {now}", file=sys.stderr)
            last = now
        await asyncio.sleep(0.5)
    raise CheckFailed(f"not drained after {timeout_s:.0f} s: {last}")


def rate_windows(times: list[float], width_s: float) -> float:
    """The most events in any `width_s` window, per second."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] < t - width_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / width_s


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its waited-for children (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """cpu_s of `pid` and of its live descendants (`labci serve --workers N` serves from
    children), each counted once: a child is in its parent's figure only once waited for."""
    try:
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        return cpu_s(pid) + sum(tree_cpu_s(child) for child in children)
    except FileNotFoundError:  # it ended meanwhile
        return 0.0


def cpu_by_process(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of each process of the stack (with its children), and of this one
    (the stand-in)."""
    used = {name: tree_cpu_s(proc.pid) for name, proc in stack.procs.items() if proc.poll() is None}
    used["bench+standin"] = cpu_s(os.getpid())
    return used


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


def check_events(events: list[dict[str, Any]], expected: int) -> None:
    if len(events) != expected:
        raise CheckFailed(f"events: {len(events)} stored, {expected} sent (lost or doubled)")
    bad = [e for e in events if e["state"] != "planned" or e["planned_at"] is None]
    if bad:
        raise CheckFailed(f"events: {len(bad)} not planned, e.g. {bad[0]}")


def check_jobs(jobs: list[dict[str, Any]], expected: int) -> None:
    """One job per event, each run once: attempt 1, success, one successful step."""
    if len(jobs) != expected:
        raise CheckFailed(f"jobs: {len(jobs)} planned, {expected} expected")
    for job in jobs:
        if (job["state"], job["attempt"], job["steps"], job["ok_steps"]) != ("success", 1, 1, 1):
            raise CheckFailed(f"job {job['id']} did not run exactly once: {job}")
        if not job["has_record"]:
            raise CheckFailed(f"job {job['id']} finished without its record: {job}")


def check_statuses(standin: Any, commits: list[tuple[str, str]]) -> int:
    """Each commit: one context, `success` after at most one `pending`; how many went
    without their `pending` (superseded while unsent, as the outbox promises)."""
    superseded = 0
    for _branch, sha in commits:
        posted = standin.statuses.get((OWNER, NAME, sha), [])
        contexts = {s["context"] for s in posted}
        states = [s["state"] for s in posted]
        if len(contexts) != 1 or states not in (["pending", "success"], ["success"]):
            raise CheckFailed(
                f"statuses of {sha[:7]}: {[(s['context'], s['state']) for s in posted]}"
            )
        superseded += states == ["success"]
    return superseded


def check_standin(standin: Any) -> float:
    """C4 and the REST description: the smallest gap between two mutations."""
    if standin.violations:
        raise CheckFailed(
            f"the stand-in saw {len(standin.violations)} violations: {standin.violations[:3]}"
        )
    mutations = standin.mutations()
    failed = [m for m in mutations if m.status != 201]
    if failed:
        raise CheckFailed(
            f"{len(failed)} mutations failed, e.g. {failed[0].path} → {failed[0].status}"
        )
    if max((m.in_flight for m in mutations), default=0) > 1:
        raise CheckFailed("two mutations were in flight with one token (C4)")
    starts = sorted(m.received_at for m in mutations)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    smallest = min(gaps, default=PACING_S)
    if smallest < PACING_S * 0.9:  # 10 %: the stand-in stamps arrival, not the send
        raise CheckFailed(f"two mutations {smallest * 1000:.1f} ms apart (pacing {PACING_S} s)")
    return smallest


JOBS_SQL = """
SELECT j.id, j.state, j.attempt, j.reason, j.finished_at, e.received_at, e.commit_sha,
       j.record IS NOT NULL AS has_record,
       (SELECT count(*) FROM steps s WHERE s.job_id = j.id) AS steps,
       (SELECT count(*) FROM steps s WHERE s.job_id = j.id AND s.status = 'success') AS ok_steps
FROM jobs j JOIN runs r ON r.id = j.run_id JOIN events e ON e.id = r.event_id
"""


@dataclass
class Bench:
    args: argparse.Namespace
    root: Path
    database_url: str
    redis_url: str
    standin: Any = None
    stack: Stack | None = None
    commits: list[tuple[str, str]] = field(default_factory=list)

    def start(self, *, worker: bool) -> list[str]:
        """The stack and the idle fleet's tokens."""
        repos = self.root / "repos"
        repos.mkdir()
        (self.root / "stack").mkdir()
        server = StandinServer(repos).start()
        self.standin = server
        repo = create_bare_repo(repos, OWNER, NAME)
        self.repo = repo
        self.commits = make_commits(repo, self.args.events)
        self.stack = Stack(
            root=self.root / "stack",
            database_url=self.database_url,
            redis_url=self.redis_url,
            github_url=server.url,
            extra_env={"LABCI_RUNNER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S)},
        )
        workers = self.args.serve_workers
        self.stack.start_server(*(["--workers", str(workers)] if workers > 1 else []))
        if worker:
            self.start_workers()
        for i in range(4):
            self.stack.start_runner(f"runner{i}")
        return asyncio.run(
            register_fleet(self.stack.url, self.database_url, self.redis_url, self.args.idle)
        )

    def start_workers(self) -> None:
        """`labci worker` × --worker-processes: planning is an arq job, so they share it."""
        assert self.stack is not None
        self.stack.start_worker()
        for i in range(1, self.args.worker_processes):
            self.stack.spawn(f"worker{i}", "labci_server.cli", "worker")

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop_all()
        if self.standin is not None:
            self.standin.stop()


def run_f1(bench: Bench) -> dict[str, Any]:
    args = bench.args
    tokens = bench.start(worker=True)
    assert bench.stack is not None
    with IdleFleet(bench.stack.url, tokens, HEARTBEAT_INTERVAL_S) as fleet:
        sent = asyncio.run(send_webhooks(bench.stack.url, bench.repo, bench.commits, args.over_s))
        if sent.failures:
            raise CheckFailed(f"{len(sent.failures)} webhooks not accepted: {sent.failures[:3]}")
        drained_at = asyncio.run(wait_drained(bench.database_url, args.events, args.timeout_s))
    events = asyncio.run(query(bench.database_url, "SELECT * FROM events"))
    jobs = asyncio.run(query(bench.database_url, JOBS_SQL))
    assert fleet.report is not None
    figures = f1_figures(args, sent, events, jobs, fleet.report, drained_at)
    print(json.dumps(figures, indent=2))  # before the checks: a failed one still shows them
    dead = asyncio.run(query(bench.database_url, "SELECT * FROM outbox WHERE status = 'dead'"))
    check_events(events, args.events)
    check_jobs(jobs, args.events)
    if dead:
        raise CheckFailed(f"{len(dead)} outbox messages dead-lettered, e.g. {dead[0]}")
    figures["statuses_without_pending"] = check_statuses(bench.standin.standin, bench.commits)
    figures["smallest_mutation_gap_ms"] = round(check_standin(bench.standin.standin) * 1000, 1)
    if fleet.report.failures:
        raise CheckFailed(
            f"{fleet.report.failures} heartbeats failed: {fleet.report.first_failure}"
        )
    return figures


def f1_figures(
    args: argparse.Namespace,
    sent: Sent,
    events: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    fleet: FleetReport,
    drained_at: float,
) -> dict[str, Any]:
    planned = [e["planned_at"] for e in events]
    lag = [e["planned_at"] - e["received_at"] for e in events]
    to_finish = [j["finished_at"] - j["received_at"] for j in jobs]
    first = min(e["received_at"] for e in events)
    return {
        "events": args.events, "over_s": args.over_s, "serve_workers": args.serve_workers,
        "worker_processes": args.worker_processes, "idle_runners": args.idle,
        "ingest_ms_p50": ms(sent.latencies_s, 0.5), "ingest_ms_p95": ms(sent.latencies_s, 0.95),
        "ingest_ms_p99": ms(sent.latencies_s, 0.99),
        "planned_per_s_peak_1s": rate_windows(planned, 1.0),
        "planned_per_s_peak_5s": rate_windows(planned, 5.0),
        "planned_per_s_overall": round(len(planned) / (max(planned) - first), 1),
        "plan_lag_ms_p50": ms(lag, 0.5), "plan_lag_ms_p95": ms(lag, 0.95),
        "webhook_to_finished_ms_p50": ms(to_finish, 0.5),
        "webhook_to_finished_ms_p95": ms(to_finish, 0.95),
        "drain_s_after_last_webhook": round(drained_at - sent.last_at, 1),
        "last_job_finished_s_after_last_webhook": round(max(j["finished_at"] for j in jobs) - sent.last_at, 1),
        "heartbeats": fleet.beats, "heartbeats_retried": fleet.retried,
        "heartbeat_ms_p50": ms(fleet.latencies_s, 0.5),
        "heartbeat_ms_p95": ms(fleet.latencies_s, 0.95),
        "idle_fleet_cpu_s": round(fleet.cpu_s, 1),
    }  # fmt: skip


def run_capacity(bench: Bench) -> dict[str, Any]:
    """Store every event with the worker stopped, then start it: how fast it plans them."""
    args = bench.args
    tokens = bench.start(worker=False)
    assert bench.stack is not None
    with IdleFleet(bench.stack.url, tokens, HEARTBEAT_INTERVAL_S) as fleet:
        sent = asyncio.run(send_webhooks(bench.stack.url, bench.repo, bench.commits, 0.0))
        if sent.failures:
            raise CheckFailed(f"{len(sent.failures)} webhooks not accepted: {sent.failures[:3]}")
        before = cpu_by_process(bench.stack)
        started = time.time()
        if args.profile_worker:  # cProfile writes its file when the worker exits
            bench.stack.spawn("worker", "cProfile", "-o", args.profile_worker, "-m",
                              "labci_server.cli", "worker")  # fmt: skip
        else:
            bench.start_workers()
        asyncio.run(wait_planned(bench.database_url, args.events, args.timeout_s))
        cpu = cpu_by_process(bench.stack)
        wall = time.time() - started
    events = asyncio.run(query(bench.database_url, "SELECT * FROM events"))
    check_events(events, args.events)
    planned = sorted(e["planned_at"] for e in events)
    span = planned[-1] - planned[0]
    return {
        "events": args.events,
        "serve_workers": args.serve_workers,
        "worker_processes": args.worker_processes,
        "idle_runners": args.idle,
        "ingest_ms_p50": ms(sent.latencies_s, 0.5),
        "ingest_ms_p95": ms(sent.latencies_s, 0.95),
        "worker_start_to_first_planned_s": round(planned[0] - started, 2),
        "first_to_last_planned_s": round(span, 2),
        "planned_per_s": round((len(planned) - 1) / span, 1) if span else None,
        "planned_per_s_peak_1s": rate_windows(planned, 1.0),
        "heartbeats": fleet.report.beats if fleet.report else 0,
        "heartbeat_ms_p50": ms(fleet.report.latencies_s, 0.5) if fleet.report else None,
        "heartbeat_ms_p95": ms(fleet.report.latencies_s, 0.95) if fleet.report else None,
        "idle_fleet_cpu_s": round(fleet.report.cpu_s, 1) if fleet.report else None,
        # Where the time went while planning: each process's CPU seconds over the wall time.
        "planning_wall_s": round(wall, 2),
        "cpu_s_while_planning": {
            name: round(used - before.get(name, 0.0), 2) for name, used in cpu.items()
        },
    }


async def wait_planned(database_url: str, events: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await progress(database_url))["planned"] >= events:
            return
        await asyncio.sleep(0.2)
    raise CheckFailed(f"not all {events} events planned after {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["f1", "capacity"], default="f1")
    parser.add_argument("--events", type=int, default=None, help="1000 (f1), 500 (capacity)")
    parser.add_argument("--over-s", type=float, default=60.0, help="spread webhooks over this")
    parser.add_argument("--idle", type=int, default=200, help="heartbeating idle runners")
    parser.add_argument("--serve-workers", type=int, default=1, help="labci serve --workers")
    parser.add_argument("--worker-processes", type=int, default=1, help="`labci worker`s")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--logs", help="write the stack's logs to this file at the end")
    parser.add_argument("--profile-worker", help="capacity: cProfile `labci worker` into this file")
    args = parser.parse_args()
    args.events = args.events or (1000 if args.mode == "f1" else 500)
    base_url = os.environ.get("LABCI_TEST_DATABASE_URL", "")
    if not base_url.startswith("postgresql"):
        sys.exit("set LABCI_TEST_DATABASE_URL to a PostgreSQL database: F1 is measured on it")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, bench_redis(Path(tmp)) as redis_url:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        database_url, name = asyncio.run(scratch_database(base_url))
        bench = Bench(args, Path(tmp), database_url, redis_url)
        try:
            figures = (run_f1 if args.mode == "f1" else run_capacity)(bench)
        except CheckFailed as exc:
            if bench.stack is not None:
                print(bench.stack.dump_logs(), file=sys.stderr)
            sys.exit(f"F1 CHECK FAILED: {exc}")
        finally:
            bench.stop()
            if args.logs and bench.stack is not None:  # whole logs: dump_logs keeps tails
                logs = sorted((bench.root / "stack").glob("*.log"))
                Path(args.logs).write_text(
                    "\n".join(f"===== {log.stem} =====\n{log.read_text()}" for log in logs)
                )
            asyncio.run(drop_database(base_url, name))
    figures["loadavg_before"] = [round(x, 2) for x in load]
    figures["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{args.mode}: all checks passed")


if __name__ == "__main__":
    main()
