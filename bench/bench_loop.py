"""Benchmark of the core loop on this machine (issue: foundation, item 14).

(a) webhook received → first step's process started: the server's recorded receive time
    of the event against the runner's recorded start of step 0, over N events, one at a
    time with an idle runner; median and p95.
(b) the added cost of a job that runs `true`: webhook received → job finished (as
    recorded by the server) minus running `bash -eo pipefail -c true` directly, both
    medians measured in the same run, and their ratio.

Real processes: `labci serve`, `labci worker`, one `labci-runner start` (process
executor), SQLite, Redis (LABCI_REDIS_URL or an embedded redis-server), and the GitHub
stand-in serving a real bare repository. Run: `uv run python bench/bench_loop.py`.
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
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from forge_standin import create_bare_repo, push_payload  # noqa: E402
from helpers.services import EmbeddedRedisServer, free_port  # noqa: E402
from helpers.stack import Stack  # noqa: E402
from helpers.waiting import wait_until  # noqa: E402

WORKFLOW = """\
name: bench
on: push
jobs:
  noop:
    runs-on: cpu
    steps:
      - run: "true"
"""


@contextlib.contextmanager
def bench_redis(root: Path) -> Iterator[str]:
    """LABCI_REDIS_URL, or an embedded redis-server under `root` while the benchmark runs."""
    url = os.environ.get("LABCI_REDIS_URL")
    if url:
        yield url
        return
    embedded = EmbeddedRedisServer(root)
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


@contextlib.contextmanager
def standin_process(repos: Path) -> Iterator[str]:
    """The GitHub stand-in in a process of its own, like the real forge."""
    port = free_port()
    tests_dir = Path(__file__).resolve().parents[1] / "tests"
    proc = subprocess.Popen(
        [sys.executable, "-m", "forge_standin", "--repos", str(repos), "--port", str(port)],
        cwd=tests_dir,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), what="the forge stand-in")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url + "/", timeout=1)
        return True
    except httpx.TransportError:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def direct_true_s(n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", "true"], check=True
        )
        times.append(time.perf_counter() - start)
    return times


def one_event(stack: Stack, repo, i: int) -> tuple[float, float]:
    sha = repo.commit({"n.txt": str(i)}, message=f"bench {i}")
    payload = push_payload("bench", "loop", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, f"bench-{i}").status_code == 202

    def finished() -> bool:
        runs = stack.runs_for_commit(sha)
        return bool(runs) and runs[0]["run"]["state"] == "finished"

    wait_until(finished, what=f"bench event {i}")
    (run,) = [stack.api(f"/api/v1/runs/{r['run']['id']}") for r in stack.runs_for_commit(sha)]
    received = run["event"]["received_at"]
    job = run["jobs"][0]
    if job["job"]["state"] != "success":
        raise SystemExit(f"bench job failed: {job['job']}")
    if os.environ.get("BENCH_BREAKDOWN"):
        j = job["job"]
        marks = {
            "planned": run["event"]["planned_at"],
            "queued": j["queued_at"],
            "started": j["started_at"],
            "step0": job["steps"][0]["started_at"],
            "finished": j["finished_at"],
        }
        print("   ", {k: round((v - received) * 1000) for k, v in marks.items()}, file=sys.stderr)
    return job["steps"][0]["started_at"] - received, job["job"]["finished_at"] - received


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as held:
        root = Path(os.environ.get("BENCH_KEEP") or tmp)
        root.mkdir(parents=True, exist_ok=True)
        redis_url = held.enter_context(bench_redis(root))
        (root / "repos").mkdir()
        (root / "stack").mkdir()
        with standin_process(root / "repos") as github_url:
            repo = create_bare_repo(root / "repos", "bench", "loop")
            repo.commit({".labci/bench.yml": WORKFLOW})
            stack = Stack(
                root=root / "stack",
                database_url=f"sqlite:///{root / 'bench.db'}",
                redis_url=redis_url,
                github_url=github_url,
            )
            try:
                stack.start_all()
                for i in range(args.warmup):
                    one_event(stack, repo, -1 - i)
                samples = []
                for i in range(args.events):
                    samples.append(one_event(stack, repo, i))
                    print(
                        f"  event {i + 1}/{args.events}: step started after {samples[-1][0] * 1000:.0f} ms",
                        file=sys.stderr,
                    )
            finally:
                stack.stop_all()
    direct = direct_true_s(args.events)
    to_start = [s[0] for s in samples]
    to_finish = [s[1] for s in samples]
    added = statistics.median(to_finish) - statistics.median(direct)
    figures = {
        "events": args.events,
        "webhook_to_first_step_ms_median": round(statistics.median(to_start) * 1000, 1),
        "webhook_to_first_step_ms_p95": round(percentile(to_start, 0.95) * 1000, 1),
        "job_true_total_ms_median": round(statistics.median(to_finish) * 1000, 1),
        "direct_true_ms_median": round(statistics.median(direct) * 1000, 1),
        "job_added_ms_median": round(added * 1000, 1),
        "job_vs_direct_ratio": round(statistics.median(to_finish) / statistics.median(direct), 1),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"(a) webhook → first step started: median {figures['webhook_to_first_step_ms_median']} ms, "
        f"p95 {figures['webhook_to_first_step_ms_p95']} ms (target ≤ 150 ms median)\n"
        f"(b) job running `true`: {figures['job_true_total_ms_median']} ms vs `true` directly "
        f"{figures['direct_true_ms_median']} ms → {figures['job_added_ms_median']} ms added "
        f"(target ≤ 300 ms), ratio {figures['job_vs_direct_ratio']}×"
    )


if __name__ == "__main__":
    main()
