"""Benchmark of log ingestion: a step printing N numbered lines as fast as it can.

Figure: step started → job finished (both recorded by labci; the job is reported finished
only once every line is stored), and the rate in stored lines per second, for a runner
sending two log batches at once (the default) against one sending them one at a time
(LABCI_RUNNER_LOG_UPLOADS_IN_FLIGHT=1), interleaved in the same run: each event's workflow
runs the two jobs one after the other (`needs`), on two runners that differ only in that
setting. `seq N > /dev/null` run directly is the floor.

Real processes: `labci serve`, `labci worker`, two `labci-runner start` (process executor),
the GitHub stand-in; PostgreSQL when LABCI_TEST_DATABASE_URL is set (as in production),
SQLite otherwise. Run: `uv run python bench/bench_logs.py [--lines N] [--events K]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_loop import bench_redis, percentile, standin_process  # noqa: E402

from forge_standin import create_bare_repo, push_payload  # noqa: E402
from helpers.stack import Stack  # noqa: E402
from helpers.waiting import wait_until  # noqa: E402

WORKFLOW = """\
name: logs
on: push
jobs:
  one-at-a-time:
    runs-on: [cpu, one]
    steps:
      - run: seq 1 {lines}
  two-in-flight:
    runs-on: [cpu, two]
    needs: one-at-a-time
    steps:
      - run: seq 1 {lines}
"""
JOBS = ("one-at-a-time", "two-in-flight")


def one_event(stack: Stack, repo, i: int, lines: int) -> dict[str, float]:
    sha = repo.commit({"n.txt": str(i)}, message=f"bench {i}")
    payload = push_payload("bench", "logs", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, f"bench-logs-{i}").status_code == 202

    def finished() -> bool:
        runs = stack.runs_for_commit(sha)
        return bool(runs) and runs[0]["run"]["state"] == "finished"

    wait_until(finished, what=f"bench event {i}", timeout_s=600)
    (summary,) = stack.runs_for_commit(sha)
    run = stack.api(f"/api/v1/runs/{summary['run']['id']}")
    seconds = {}
    for job in run["jobs"]:
        if job["job"]["state"] != "success" or job["job"]["attempt"] != 1:
            raise SystemExit(f"bench job did not succeed at once: {job['job']}")
        seconds[job["job"]["job_key"]] = job["job"]["finished_at"] - job["steps"][0]["started_at"]
    return seconds


def direct_s(lines: int, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["seq", "1", str(lines)], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as held:
        root = Path(tmp)
        redis_url = held.enter_context(bench_redis(root))
        (root / "repos").mkdir()
        (root / "stack").mkdir()
        database_url = os.environ.get("LABCI_TEST_DATABASE_URL") or f"sqlite:///{root / 'b.db'}"
        with standin_process(root / "repos") as github_url:
            repo = create_bare_repo(root / "repos", "bench", "logs")
            repo.commit({".labci/logs.yml": WORKFLOW.format(lines=args.lines)})
            stack = Stack(
                root=root / "stack",
                database_url=database_url,
                redis_url=redis_url,
                github_url=github_url,
            )
            try:
                if not database_url.startswith("sqlite"):
                    stack.run_cli("db", "upgrade")
                stack.start_server()
                stack.start_worker()
                stack.start_runner("one", labels="cpu,one", LABCI_RUNNER_LOG_UPLOADS_IN_FLIGHT="1")
                stack.start_runner("two", labels="cpu,two")
                samples = []
                for i in range(args.events):
                    samples.append(one_event(stack, repo, i, args.lines))
                    shown = ", ".join(f"{k} {v:.2f} s" for k, v in samples[-1].items())
                    print(f"  event {i + 1}/{args.events}: {shown}", file=sys.stderr)
            finally:
                stack.stop_all()
    direct = direct_s(args.lines, args.events)
    figures: dict[str, object] = {
        "lines": args.lines,
        "events": args.events,
        "database": "postgresql" if not database_url.startswith("sqlite") else "sqlite",
        "direct_seq_s_median": round(statistics.median(direct), 3),
    }
    for key in JOBS:
        values = [s[key] for s in samples]
        figures[f"{key}_s_median"] = round(statistics.median(values), 2)
        figures[f"{key}_s_p95"] = round(percentile(values, 0.95), 2)
        figures[f"{key}_lines_per_s_median"] = round(args.lines / statistics.median(values))
    figures["speedup"] = round(
        statistics.median(s[JOBS[0]] for s in samples)
        / statistics.median(s[JOBS[1]] for s in samples),
        2,
    )
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
