"""Reliability B5, B6, B7: the whole loop outlasts Redis killed with -9, flushed, or down
for 30 s, with no process restarted by hand.

Each test starts its own redis-server (helpers/redis_process.py), never the shared one. Every
step appends "<job id> <attempt>" to a file, so starts are counted by what actually ran.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.redis_process import RedisProcess
from helpers.rows import sql
from helpers.stack import Stack
from helpers.waiting import HANG_GUARD_S, wait_until

REDIS_SETTLE_S = 2.0  # scheduling/reconciler.py SETTLE_S: a fresh queued row is left alone
RECONNECT_MAX_S = 2.0  # redis_outage.py: the longest wait between two tries


def job_states(stack: Stack) -> list[tuple[int, str, int, float | None]]:
    """(id, state, attempt, queued_at) of every job."""
    return sql(stack.database_url, "SELECT id, state, attempt, queued_at FROM jobs ORDER BY id")


def starts_by_job(path: Path) -> Counter[tuple[int, int]]:
    """How many times each (job id, attempt) started a step."""
    lines = path.read_text().split() if path.exists() else []
    return Counter((int(j), int(a)) for j, a in zip(lines[::2], lines[1::2], strict=True))


def matrix_workflow(name: str, size: int, starts: Path) -> str:
    """`size` jobs whose step notes its start. They are repeats of one experiment, so the
    forge gets one context per workflow rather than one per job (statuses are not what
    these tests are about, and 1,000 of them would take the stand-in's time)."""
    values = ", ".join(str(i) for i in range(size))
    return f"""\
name: {name}
on: push
jobs:
  step:
    runs-on: cpu
    strategy: {{matrix: {{i: [{values}]}}}}
    steps:
      - run: echo "$LABCI_JOB_ID $LABCI_ATTEMPT" >> {starts}
    metrics: {{repeats: i}}
"""


@pytest.fixture
def redis_stacks(tmp_path: Path, database_url: str, github: Any) -> Iterator[Any]:
    """`make(appendfsync, **env)` → (stack, redis) on a redis-server of the test's own."""
    made: list[tuple[Stack, RedisProcess]] = []

    def make(appendfsync: str | None, **env: str) -> tuple[Stack, RedisProcess]:
        redis_server = RedisProcess(tmp_path / "redis", appendfsync=appendfsync)
        redis_server.start()
        stack = Stack(
            root=tmp_path / "stack",
            database_url=database_url,
            redis_url=redis_server.url,
            github_url=github.url,
            extra_env=env,
        )
        stack.root.mkdir()
        made.append((stack, redis_server))
        return stack, redis_server

    try:
        yield make
    finally:
        for stack, redis_server in made:
            stack.stop_all()
            redis_server.stop()


def push(stack: Stack, github: Any, files: dict[str, str], name: str) -> str:
    repo = create_bare_repo(github.repos_root, "octo", name)
    sha = repo.commit(files)
    payload = push_payload("octo", name, repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, f"redis-{name}").status_code == 202
    return sha


def wait_for_count(count: Callable[[], int], target: int, *, what: str) -> None:
    """Wait until `count()` reaches `target`, failing only when it stops moving for the
    hang guard (a long stream is not a hang). Polled every half second: each poll is a
    database query, and the machine has two cores for the whole stack."""
    last, moved_at = -1, time.monotonic()
    while (now := count()) < target:
        if now != last:
            last, moved_at = now, time.monotonic()
        elif time.monotonic() - moved_at > HANG_GUARD_S:
            pytest.fail(f"stuck at {now}/{target} for {HANG_GUARD_S:.0f}s waiting for {what}")
        time.sleep(0.5)


def said(stack: Stack, name: str, text: str) -> int:
    """How many times process `name` logged `text`."""
    return stack.log(name).count(text)


def server_errors(stack: Stack) -> list[str]:
    """The API's 5xx answers and unhandled errors: Redis being away must cause none."""
    lines = (stack.root / "server.log").read_text(errors="replace").splitlines()
    return [line for line in lines if 'HTTP/1.1" 5' in line or "Exception in ASGI" in line]


def alive(stack: Stack, *names: str) -> list[str]:
    return [name for name in names if stack.procs[name].poll() is None]


JOBS_B5 = 500


@pytest.mark.timeout(900)  # 500 jobs through the whole loop on a shared 2-core machine
def test_b5_redis_killed_mid_stream_with_appendfsync_always(redis_stacks, github, tmp_path):
    stack, redis_server = redis_stacks("always")
    starts = tmp_path / "starts.txt"
    stack.start_server()
    stack.start_worker()
    stack.start_runner("runner0", slots=4)
    stack.start_runner("runner1", slots=4)
    half = JOBS_B5 // 2
    push(
        stack,
        github,
        {
            ".labci/a.yml": matrix_workflow("a", half, starts),
            ".labci/b.yml": matrix_workflow("b", JOBS_B5 - half, starts),
        },
        "many",
    )

    def finished() -> int:
        return sum(state == "success" for _, state, _, _ in job_states(stack))

    wait_for_count(finished, JOBS_B5 // 5, what="a fifth of the jobs to finish")
    redis_server.kill()
    processes = ("server", "worker", "runner0", "runner1")
    wait_until(
        lambda: all(said(stack, n, "unreachable") for n in ("worker", "runner0", "runner1")),
        what="the worker and both runners to notice the outage",
    )
    at_kill = finished()
    redis_server.start()  # its append-only file, fsynced at every write, is read back
    wait_for_count(finished, JOBS_B5, what=f"all {JOBS_B5} jobs to succeed")

    jobs = job_states(stack)
    assert len(jobs) == JOBS_B5
    assert at_kill < JOBS_B5  # the kill came mid-stream
    assert alive(stack, *processes) == list(processes)  # nobody was restarted
    counted = starts_by_job(starts)
    # A job started exactly once per attempt: no silent double run, no lost job.
    assert {(job_id, attempt): 1 for job_id, _, attempt, _ in jobs} == dict(counted)
    for name in ("worker", "runner0", "runner1"):
        assert said(stack, name, "unreachable") == 1, stack.tail(name)  # once per outage
        assert said(stack, name, "answers again") == 1, stack.tail(name)
    assert server_errors(stack) == []


def test_b6_flushed_and_restarted_without_persistence(redis_stacks, github, tmp_path):
    stack, redis_server = redis_stacks(
        None,
        # The runner is stopped while its queue is flushed: it must stay online meanwhile.
        LABCI_LEASE_S="30",
    )
    starts = tmp_path / "starts.txt"
    stack.start_server()
    stack.start_worker()
    stack.start_runner("runner", slots=4)
    wait_until(
        lambda: sql(stack.database_url, "SELECT last_heartbeat_at FROM runners")[0][0],
        what="the runner's first heartbeat",
    )
    queue = sql(stack.database_url, "SELECT queue_name FROM runners")[0][0]
    size = 4

    stack.procs["runner"].send_signal(signal.SIGSTOP)  # jobs stay queued, unpicked
    try:
        push(stack, github, {".labci/few.yml": matrix_workflow("few", size, starts)}, "few")
        client = redis_server.client()
        wait_until(lambda: client.zcard(queue) == size, what="the jobs queued in Redis")
        assert [state for _, state, _, _ in job_states(stack)] == ["queued"] * size
        client.flushall()
        client.close()
        redis_server.kill()
        redis_server.start()  # no persistence: empty
        back_at = time.time()
    finally:
        stack.procs["runner"].send_signal(signal.SIGCONT)

    wait_until(
        lambda: [s for _, s, _, _ in job_states(stack)] == ["success"] * size,
        what="the flushed jobs to be re-enqueued and to succeed",
    )
    jobs = job_states(stack)
    counted = starts_by_job(starts)
    assert {(job_id, attempt): 1 for job_id, _, attempt, _ in jobs} == dict(counted)
    assert {attempt for _, _, attempt, _ in jobs} == {1}
    # Re-enqueued within one reconciler interval of Redis answering (or of the rows
    # settling, whichever is later), give or take one reconnection wait.
    client = redis_server.client()
    keys = [f"arq:result:{queue}:job-{job_id}-{attempt}" for job_id, _, attempt, _ in jobs]
    # arq writes its result (with the enqueue time) once the job reported to the server.
    wait_until(lambda: client.exists(*keys) == len(keys), what="arq's results")
    delays = []
    for key, (_, _, _, queued_at) in zip(keys, jobs, strict=True):
        result = json.loads(client.get(key))
        due = max(back_at, (queued_at or 0) + REDIS_SETTLE_S)
        delays.append(result["et"] / 1000 - due)
    client.close()
    assert max(delays) <= 1.0 + RECONNECT_MAX_S, delays  # LABCI_REAPER_INTERVAL_S=1

    # The worker plans and the runner takes new work on the new Redis, unrestarted.
    push(stack, github, {".labci/more.yml": matrix_workflow("more", 2, starts)}, "more")
    wait_until(
        lambda: [s for _, s, _, _ in job_states(stack)] == ["success"] * (size + 2),
        what="new work after the flush",
    )
    assert alive(stack, "server", "worker", "runner") == ["server", "worker", "runner"]
    assert server_errors(stack) == []


OUTAGE_S = 30.0
CHATTY = """\
name: chatty
on: push
jobs:
  talk:
    runs-on: cpu
    strategy: {{matrix: {{part: [1, 2]}}, max-parallel: 1}}
    steps:
      - run: |
          echo "$LABCI_JOB_ID $LABCI_ATTEMPT" >> {starts}
          i=0
          while [ ! -e {gate} ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done
          echo "line $i"
"""


def stored_log(stack: Stack, job_id: int) -> list[tuple[int, str]]:
    return sql(
        stack.database_url,
        "SELECT seq, text FROM log_lines WHERE job_id = $1 AND attempt = 1 ORDER BY seq",
        job_id,
    )


def test_b7_redis_down_30_s_while_a_job_runs(redis_stacks, github, tmp_path):
    stack, redis_server = redis_stacks("always")
    starts, gate = tmp_path / "starts.txt", tmp_path / "go"
    stack.start_server()
    stack.start_worker()
    # Two slots and max-parallel 1: the second job stays pending while the first runs.
    stack.start_runner("runner", slots=2)
    push(stack, github, {".labci/chatty.yml": CHATTY.format(starts=starts, gate=gate)}, "chatty")

    def running() -> int | None:
        found = [job_id for job_id, state, _, _ in job_states(stack) if state == "running"]
        return found[0] if found else None

    wait_until(lambda: running() and len(stored_log(stack, running())) >= 10, what="output")
    first = running()
    redis_server.kill()
    down_at = time.monotonic()
    wait_until(
        lambda: said(stack, "runner", "unreachable") and said(stack, "worker", "unreachable"),
        what="the runner and the worker to notice the outage",
    )
    during = len(stored_log(stack, first))
    wait_until(lambda: len(stored_log(stack, first)) >= during + 20, what="logs during the outage")
    # A push during the outage is stored and answered 202; it waits in `received`. The
    # API cannot enqueue its planning, and says so once.
    push(stack, github, {".labci/late.yml": matrix_workflow("late", 1, starts)}, "late")
    wait_until(lambda: said(stack, "server", "unreachable"), what="the API to notice")
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage itself
    assert alive(stack, "server", "worker", "runner") == ["server", "worker", "runner"]
    assert [s for i, s, _, _ in job_states(stack) if i == first] == ["running"]
    late = "SELECT state FROM events WHERE delivery_id = 'redis-late'"
    assert sql(stack.database_url, late) == [("received",)]
    redis_server.start()
    wait_until(
        lambda: said(stack, "runner", "answers again") and said(stack, "worker", "answers again"),
        what="the runner and the worker to reconnect",
    )
    gate.touch()
    wait_until(
        lambda: [s for _, s, _, _ in job_states(stack)] == ["success"] * 3,
        what="both chatty jobs and the late push's job to succeed",
    )

    jobs = job_states(stack)
    assert {(job_id, attempt): 1 for job_id, _, attempt, _ in jobs} == dict(starts_by_job(starts))
    for job_id, _, attempt, _ in jobs:
        assert attempt == 1  # the lease held through the outage
        log = stored_log(stack, job_id)
        assert [seq for seq, _ in log] == list(range(len(log)))  # contiguous, in order
        numbered = [text for _, text in log if text.startswith("line ")]
        assert numbered == [f"line {n}" for n in range(len(numbered))]
    assert len(stored_log(stack, first)) > during + 20
    for name in ("runner", "worker", "server"):
        assert said(stack, name, "unreachable") == 1, stack.tail(name)  # once per outage
        assert said(stack, name, "answers again") == 1, stack.tail(name)
    assert server_errors(stack) == []  # heartbeats and log uploads went on throughout
    assert said(stack, "runner", "heartbeat failed") == 0
    # The push during the outage: one line for the outage, no traceback per delivery.
    assert said(stack, "server", "Traceback") == 0, stack.tail("server")


LOST = """\
name: lost
on: push
jobs:
  train:
    runs-on: cpu
    steps:
      - run: |
          echo "$LABCI_JOB_ID $LABCI_ATTEMPT" >> {starts}
          if [ "$LABCI_ATTEMPT" = 1 ]; then echo $$ > {pid}; exec sleep 600; fi
"""


def test_a_runner_lost_while_redis_is_away_is_reaped_meanwhile(redis_stacks, github, tmp_path):
    """The lease repairs need no Redis: a runner killed during an outage loses its job to a
    second attempt before Redis is back, and the attempt runs once it is."""
    stack, redis_server = redis_stacks("always")
    starts, pid = tmp_path / "starts.txt", tmp_path / "step.pid"
    stack.start_server()
    stack.start_worker()
    stack.start_runner("doomed")
    push(stack, github, {".labci/lost.yml": LOST.format(starts=starts, pid=pid)}, "lost")
    try:
        wait_until(pid.exists, what="attempt 1's step to start")
        redis_server.kill()
        wait_until(lambda: said(stack, "worker", "unreachable"), what="the worker to notice")
        # An event to plan: the full reconciler pass now waits for Redis to enqueue it.
        push(stack, github, {".labci/late.yml": matrix_workflow("late", 1, starts)}, "late")
        stack.stop("doomed", signal.SIGKILL)
        wait_until(
            lambda: [(s, a) for _, s, a, _ in job_states(stack)] == [("pending", 2)],
            what="the reaper to hand the job to attempt 2",
        )
        assert redis_server.proc is not None
        assert redis_server.proc.poll() is not None  # still away
        redis_server.start()
        stack.start_runner("rescuer")
        wait_until(
            lambda: (
                [(s, a) for _, s, a, _ in job_states(stack)] == [("success", 2), ("success", 1)]
            ),
            what="attempt 2 and the late push's job to succeed",
        )
    finally:
        if pid.exists():  # attempt 1's step, orphaned by the killed runner
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), signal.SIGKILL)
    [(lost, _, _, _), (late, _, _, _)] = job_states(stack)
    assert dict(starts_by_job(starts)) == {(lost, 1): 1, (lost, 2): 1, (late, 1): 1}
    assert server_errors(stack) == []
