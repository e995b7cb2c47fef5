"""Benchmark of the core loop on this machine (issue 14: foundation, and item 9).

(a) webhook → first step's process started, over N push events, one at a time with an
    idle runner; median and p95, two ways:
    - labci's own record: the server's receive time of the event against the runner's
      start of step 0 (the figure with a target);
    - from the bench's side, for the comparison with Buildbot: the time the webhook was
      sent against the time the step's own command (`date +%s.%N`) wrote into a file.
(b) the added cost of a job running that one command: webhook received → job finished
    (as recorded by the server) minus running the same command with bash directly, both
    medians measured in the same run, and their ratio.
(c) the Buildbot baseline (buildbot_baseline.py), measured in the same run, its events
    interleaved with labci's: the same push webhook, the same command as its first step,
    sent → written; and the ratio labci / Buildbot.
(d) idle CPU over `--idle-seconds` after the events: `labci worker`, `labci-runner start`
    (and Buildbot's master and worker), from utime + stime in /proc/<pid>/stat.

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
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from buildbot_baseline import BUILDBOT_VERSION, Buildbot, buildbot_running, buildbot_venv  # noqa: E402

from forge_standin import create_bare_repo, headers, push_payload  # noqa: E402
from helpers.services import EmbeddedRedisServer, free_port  # noqa: E402
from helpers.stack import SECRET, Stack  # noqa: E402
from helpers.waiting import wait_until  # noqa: E402

# The same command as Buildbot's first step: it records when the step's process ran.
STAMP_SCRIPT = "date +%s.%N > {stamps}/{who}-{sha}"
WORKFLOW = """\
name: bench
on: push
jobs:
  noop:
    runs-on: cpu
    steps:
      - run: {script}
"""
CLOCK_TICKS_S = os.sysconf("SC_CLK_TCK")
# The test stack's timers are sped up (1 s reaper passes and heartbeats); the idle CPU of a
# deployment comes from its defaults. None of them is on the way from webhook to step.
PRODUCTION_TIMERS = {
    "LABCI_LEASE_S": "30",
    "LABCI_REAPER_INTERVAL_S": "5",
    "LABCI_RUNNER_HEARTBEAT_INTERVAL_S": "2",
}


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


def direct_command_s(n: int, script: str) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], check=True
        )
        times.append(time.perf_counter() - start)
    return times


def read_stamp(path: Path) -> float:
    """The time the step's command wrote into `path` (it may still be writing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return float(path.read_text())
        time.sleep(0.01)
    raise SystemExit(f"no stamp at {path} after 60 s")


@dataclass(frozen=True)
class LabciSample:
    recorded_s: float  # received → step 0 started, as labci recorded them
    sent_to_stamp_s: float  # webhook sent → the step's command ran
    finished_s: float  # received → job finished


def one_event(
    stack: Stack, http: httpx.Client, repo, stamps: Path, i: int
) -> tuple[LabciSample, str]:
    sha = repo.commit({"n.txt": str(i)}, message=f"bench {i}")
    payload = push_payload("bench", "loop", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    body = json.dumps(payload).encode()
    signed = headers("push", f"bench-{i}", body, SECRET)
    sent = time.time()
    answer = http.post(stack.url + "/webhooks/github", content=body, headers=signed)
    assert answer.status_code == 202, answer.text

    def finished() -> bool:
        runs = stack.runs_for_commit(sha)
        return bool(runs) and runs[0]["run"]["state"] == "finished"

    # The step's stamp file first, read off the disk: asking the API every 50 ms while the
    # job is on its way would take CPU from the server on the path being measured.
    stamp = read_stamp(stamps / f"labci-{sha}")
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
    sample = LabciSample(
        recorded_s=job["steps"][0]["started_at"] - received,
        sent_to_stamp_s=stamp - sent,
        finished_s=job["job"]["finished_at"] - received,
    )
    return sample, sha


def buildbot_event(buildbot: Buildbot, clone_url: str, sha: str, number: int) -> float:
    sent = buildbot.deliver_push(clone_url, sha, number)
    stamp = read_stamp(buildbot.stamps / f"buildbot-{sha}")
    buildbot.wait_built(number)  # idle again before the next event, like labci's runner
    return stamp - sent


def cpu_s(pid: int) -> float:
    """utime + stime of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_S


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU each process used while idle for `seconds`, as a percentage of one core."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: 100 * (cpu_s(pid) - before[name]) / seconds for name, pid in pids.items()}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": ms(statistics.median(values)), "p95_ms": ms(percentile(values, 0.95))}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--idle-seconds", type=float, default=60, help="idle CPU window after the events; 0: skip"
    )
    parser.add_argument(
        "--no-buildbot", action="store_true", help="labci alone, without the Buildbot baseline"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path.home() / ".cache" / "labci-bench",
        help="where the throwaway Buildbot virtualenv is kept between runs",
    )
    parser.add_argument(
        "--database-url",
        help="an empty PostgreSQL database to run on (postgresql+asyncpg://…); default SQLite",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    bin_dir = None if args.no_buildbot else buildbot_venv(args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as held:
        root = Path(os.environ.get("BENCH_KEEP") or tmp)
        root.mkdir(parents=True, exist_ok=True)
        stamps = root / "stamps"
        for name in ("repos", "stack", "stamps", "buildbot"):
            (root / name).mkdir()
        redis_url = held.enter_context(bench_redis(root))
        # One client for every delivery, kept alive: the time sent is the request's own.
        http = held.enter_context(httpx.Client(timeout=30))
        github_url = held.enter_context(standin_process(root / "repos"))
        repo = create_bare_repo(root / "repos", "bench", "loop")
        script = STAMP_SCRIPT.format(stamps=stamps, who="labci", sha="$LABCI_COMMIT_SHA")
        repo.commit({".labci/bench.yml": WORKFLOW.format(script=json.dumps(script))})
        buildbot, bb_procs = (None, {})
        if bin_dir is not None:
            buildbot, bb_procs = held.enter_context(
                buildbot_running(bin_dir, root / "buildbot", stamps, http)
            )
        stack = Stack(
            root=root / "stack",
            database_url=args.database_url or f"sqlite:///{root / 'bench.db'}",
            redis_url=redis_url,
            github_url=github_url,
            extra_env=PRODUCTION_TIMERS,
        )
        held.callback(stack.stop_all)
        stack.start_all()
        args.load_before = os.getloadavg()  # the machine is shared: say how busy it was
        labci, baseline = run_events(args, stack, http, repo, stamps, buildbot)
        idle = measure_idle(args.idle_seconds, stack, bb_procs)
        direct_script = STAMP_SCRIPT.format(stamps=stamps, who="direct", sha="run")
        direct = direct_command_s(args.events, direct_script)
    report(args, labci, baseline, direct, idle)


def measure_idle(
    seconds: float, stack: Stack, buildbot_procs: dict[str, subprocess.Popen[bytes]]
) -> dict[str, float]:
    """Idle CPU of labci's worker and runner (and Buildbot's processes), in % of a core."""
    if seconds <= 0:
        return {}
    pids = {"labci worker": stack.procs["worker"].pid}
    pids["labci-runner start"] = stack.procs["runner0"].pid
    pids.update({name: proc.pid for name, proc in buildbot_procs.items()})
    print(f"  idle for {seconds:.0f} s …", file=sys.stderr)
    return idle_cpu(pids, seconds)


def run_events(
    args: argparse.Namespace,
    stack: Stack,
    http: httpx.Client,
    repo,
    stamps: Path,
    buildbot: Buildbot | None,
) -> tuple[list[LabciSample], list[float]]:
    """Warm-up events, then the measured ones; Buildbot's interleaved with labci's."""
    labci: list[LabciSample] = []
    baseline: list[float] = []
    for i in range(-args.warmup, args.events):
        sample, sha = one_event(stack, http, repo, stamps, i)
        bb = (
            buildbot_event(buildbot, repo.clone_url, sha, i + args.warmup + 1) if buildbot else None
        )
        if i < 0:
            continue
        labci.append(sample)
        line = f"  event {i + 1}/{args.events}: labci {ms(sample.recorded_s):.0f} ms recorded, "
        line += f"{ms(sample.sent_to_stamp_s):.0f} ms sent → step ran"
        if bb is not None:
            baseline.append(bb)
            line += f"; Buildbot {ms(bb):.0f} ms sent → step ran"
        print(line, file=sys.stderr)
    return labci, baseline


def report(
    args: argparse.Namespace,
    labci: list[LabciSample],
    baseline: list[float],
    direct: list[float],
    idle: dict[str, float],
) -> None:
    to_finish = [s.finished_s for s in labci]
    added = statistics.median(to_finish) - statistics.median(direct)
    sent = summary([s.sent_to_stamp_s for s in labci])
    figures: dict[str, object] = {
        "events": args.events,
        "loadavg_1_5_15_before": [round(x, 2) for x in args.load_before],
        "loadavg_1_5_15_after": [round(x, 2) for x in os.getloadavg()],
        "labci_recorded": summary([s.recorded_s for s in labci]),
        "labci_sent_to_step": sent,
        "job_total_ms_median": ms(statistics.median(to_finish)),
        "direct_command_ms_median": ms(statistics.median(direct)),
        "job_added_ms_median": ms(added),
        "job_vs_direct_ratio": round(statistics.median(to_finish) / statistics.median(direct), 1),
    }
    if baseline:
        bb = summary(baseline)
        figures["buildbot_sent_to_step"] = bb
        figures["ratio_labci_to_buildbot_median"] = round(sent["median_ms"] / bb["median_ms"], 2)
        figures["ratio_labci_to_buildbot_p95"] = round(sent["p95_ms"] / bb["p95_ms"], 2)
    if idle:
        figures["idle_cpu_percent_of_a_core"] = {k: round(v, 2) for k, v in idle.items()}
        figures["idle_seconds"] = args.idle_seconds
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    rec = figures["labci_recorded"]
    lines = [
        f"(a) webhook received → first step started (labci's record): median {rec['median_ms']} ms,"
        f" p95 {rec['p95_ms']} ms (target ≤ 50 ms median, ≤ 80 ms p95)",
        f"    webhook sent → first step ran: labci median {sent['median_ms']} ms,"
        f" p95 {sent['p95_ms']} ms",
        f"(b) job running one command: {figures['job_total_ms_median']} ms vs the command directly"
        f" {figures['direct_command_ms_median']} ms → {figures['job_added_ms_median']} ms added,"
        f" ratio {figures['job_vs_direct_ratio']}×",
    ]
    if baseline:
        lines.append(
            f"(c) Buildbot {BUILDBOT_VERSION}, same run, sent → first step ran: median "
            f"{bb['median_ms']} ms, p95 {bb['p95_ms']} ms; labci / Buildbot: "
            f"{figures['ratio_labci_to_buildbot_median']} (median), "
            f"{figures['ratio_labci_to_buildbot_p95']} (p95)"
        )
    for name, percent in idle.items():
        lines.append(
            f"(d) idle CPU over {args.idle_seconds:.0f} s, {name}: {percent:.2f} % of a core"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
