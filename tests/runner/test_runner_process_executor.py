"""The process executor runs real bash processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Iterator

import pytest
from runner_kit import JobDirs, Recorder, make_context, make_job, pid_alive, read_pid, wait_gone

from labci_runner.executors.lines import TRUNCATED_MARK
from labci_runner.executors.process import ProcessExecutor
from labci_runner.logs import LogSink

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "FROM_RUNNER": "runner",
    "A": "runner",
    "LABCI_RUNNER_TOKEN": "runner-secret",
    "LABCI_REGISTRATION_TOKEN": "registration-secret",
    "LABCI_REDIS_URL": "redis://:password@redis:6379/0",
}


def executor(grace_s: float = 10.0, **kwargs: int) -> ProcessExecutor:
    return ProcessExecutor(base_env=BASE_ENV, grace_s=grace_s, **kwargs)


async def test_steps_succeed_and_stream_stdout_and_stderr_separately(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job("echo hello; echo oops >&2", "echo second")
    outcome = await executor().run(job, make_context(job_dirs, sink, recorder))
    await sink.close()
    assert (outcome.outcome, outcome.reason) == ("success", None)
    assert recorder.final_statuses() == ["success", "success"]
    assert [r.exit_code for r in recorder.steps if r.status != "running"] == [0, 0]
    assert recorder.texts("stdout") == ["hello", "second"]
    assert recorder.texts("stderr") == ["oops"]
    assert [line["seq"] for line in recorder.lines] == list(range(len(recorder.lines)))


async def test_failing_step_skips_later_steps(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job("echo one", "false; echo not-reached", "echo never")
    outcome = await executor().run(job, make_context(job_dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "failure"
    assert outcome.reason == "step 2 (false; echo not-reached) exited with 1"
    assert recorder.final_statuses() == ["success", "failure", "skipped"]
    assert "not-reached" not in recorder.texts()
    assert "never" not in recorder.texts()


async def test_pipefail_is_on(job_dirs: JobDirs, sink: LogSink, recorder: Recorder) -> None:
    outcome = await executor().run(make_job("false | cat"), make_context(job_dirs, sink, recorder))
    assert outcome.outcome == "failure"


async def test_env_layering_output_dir_and_no_runner_env(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    step = {
        "run": 'env > "$LABCI_OUTPUT/env.txt"; pwd > "$LABCI_OUTPUT/pwd.txt"',
        "env": {"B": "step", "C": "step"},
    }
    job = make_job(step, env={"A": "job", "B": "job"})
    ctx = make_context(job_dirs, sink, recorder, server_env={"C": "server", "LABCI_JOB_ID": "7"})
    outcome = await executor().run(job, ctx)
    assert outcome.outcome == "success"
    lines = (job_dirs.output / "env.txt").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    # The runner's own variables never reach a step; the server's only as LABCI_* values.
    assert "FROM_RUNNER" not in env
    assert (env["A"], env["B"], env["C"]) == ("job", "step", "step")
    assert env["LABCI_JOB_ID"] == "7"
    assert env["CI"] == "true"
    assert env["LABCI_OUTPUT"] == str(job_dirs.output)
    assert env["LABCI_WORKSPACE"] == str(job_dirs.workspace)
    assert not {"LABCI_RUNNER_TOKEN", "LABCI_REGISTRATION_TOKEN", "LABCI_REDIS_URL"} & set(env)
    assert (job_dirs.output / "pwd.txt").read_text().strip() == str(job_dirs.workspace)


async def test_long_lines_are_truncated(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job("head -c 5000 /dev/zero | tr '\\0' x; echo; echo after")
    outcome = await executor(max_line_bytes=1024).run(job, make_context(job_dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == ["x" * 1024 + TRUNCATED_MARK, "after"]


async def test_a_progress_bar_redrawn_past_the_cap_keeps_its_final_state(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    """tqdm's way: `\r` and a new drawing, thousands of times, one newline at the end."""
    bar = 'i=0; while [ $i -le 3000 ]; do printf "\\r%5d/3000 |##########|" $i; i=$((i+1)); done'
    job = make_job(bar + "; echo; echo after")
    outcome = await executor(max_line_bytes=1024).run(job, make_context(job_dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "success"
    drawn, after = recorder.texts("stdout")
    assert drawn.endswith("\r 3000/3000 |##########|")
    assert TRUNCATED_MARK not in drawn
    assert len(drawn) < 100  # ~90 KB of redrawing, stored as two drawings
    assert after == "after"


async def test_background_child_of_a_successful_step_is_killed(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job('sleep 300 & echo $! > "$LABCI_OUTPUT/child.pid"')
    outcome = await executor().run(job, make_context(job_dirs, sink, recorder))
    assert outcome.outcome == "success"
    assert wait_gone(read_pid(job_dirs.output / "child.pid"))


async def test_timeout_kills_the_whole_process_group(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    # The step ignores SIGINT and SIGTERM, so only the SIGKILL after the grace periods ends it.
    script = 'trap "" INT TERM; sleep 300 & echo $! > "$LABCI_OUTPUT/child.pid"; sleep 300'
    job = make_job(script, "echo never")
    ctx = make_context(job_dirs, sink, recorder, timeout_s=1.0)
    outcome = await asyncio.wait_for(executor(grace_s=0.3).run(job, ctx), 10)
    await sink.close()
    assert (outcome.outcome, outcome.reason) == ("timed_out", "timed out after 1 s")
    assert wait_gone(read_pid(job_dirs.output / "child.pid"))
    assert recorder.final_statuses() == ["failure", "skipped"]
    assert recorder.steps[1].exit_code == 128 + 9  # SIGKILL
    system = recorder.texts("system")
    assert "timed out after 1 s" in system
    assert [t for t in system if t.startswith("sending")] == [
        "sending SIGINT to the step",
        "sending SIGTERM to the step",
        "sending SIGKILL to the step",
    ]


async def test_timeout_message_in_minutes() -> None:
    from labci_runner.executors.base import describe_timeout

    assert describe_timeout(1800) == "timed out after 30 min"


async def test_cancellation_kills_the_group_and_reraises(
    job_dirs: JobDirs, recorder: Recorder
) -> None:
    recorder.wait_for_text = "ready"
    script = 'sleep 300 & echo $! > "$LABCI_OUTPUT/child.pid"; echo ready; wait'
    job = make_job(script, "echo never")
    async with LogSink(recorder.send, flush_interval_s=0.01) as sink:
        ctx = make_context(job_dirs, sink, recorder)
        task = asyncio.create_task(executor(grace_s=5).run(job, ctx))
        await asyncio.wait_for(recorder.seen.wait(), 10)
        child = read_pid(job_dirs.output / "child.pid")
        assert pid_alive(child)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert wait_gone(child)
    assert recorder.final_statuses() == ["failure", "skipped"]
    assert recorder.steps[1].exit_code == 128 + 2  # SIGINT was enough
    assert "sending SIGTERM to the step" not in recorder.texts("system")
    assert "cancelled" in recorder.texts("system")


@pytest.fixture
def inherited_signals() -> Iterator[None]:
    """The runner as `nohup`/`&` leave it: SIGINT ignored; and SIGTERM blocked too."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("inherited_signals")
async def test_steps_start_with_default_signals_whatever_the_runner_inherited(
    job_dirs: JobDirs, recorder: Recorder
) -> None:
    job = make_job("grep -E '^Sig(Ign|Blk):' /proc/self/status")
    async with LogSink(recorder.send, flush_interval_s=0.01) as sink:
        outcome = await executor().run(job, make_context(job_dirs, sink, recorder))
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]


@pytest.mark.usefixtures("inherited_signals")
def test_steps_start_with_default_signals_from_a_loop_off_the_main_thread(
    job_dirs: JobDirs,
) -> None:
    """Off the main thread the runner cannot set handlers: the reset runs in the child."""
    job = make_job("grep -E '^Sig(Ign|Blk):' /proc/self/status")
    recorder = Recorder()

    async def run() -> str:
        async with LogSink(recorder.send, flush_interval_s=0.01) as sink:
            outcome = await executor().run(job, make_context(job_dirs, sink, recorder))
        return outcome.outcome

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # A new thread starts with the mask of the one that made it: SIGTERM blocked.
        assert pool.submit(asyncio.run, run()).result() == "success"
    assert recorder.texts("stdout") == ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"]
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # the runner's own, untouched


@pytest.mark.usefixtures("inherited_signals")
async def test_sigint_interrupts_a_step_of_a_runner_that_ignores_it(
    job_dirs: JobDirs, recorder: Recorder
) -> None:
    await test_cancellation_kills_the_group_and_reraises(job_dirs, recorder)
