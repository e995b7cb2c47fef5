"""The job flow: one attempt from fetch to completion report.

    fetch (409 → drop quietly) → checkout → start → executor → metrics → complete

Everything a person should see ends in exactly one `complete` call: the experiment's
result (success, failure, timed_out), a cancellation, or "error" with the reason when
labci itself failed (checkout, executor, unreadable metrics). A 409 at any point means
the attempt moved on: stop and report nothing. The workspace is removed afterwards; the
git mirror stays for the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import pydantic

from labci_runner.checkout import MirrorCache
from labci_runner.client import Assignment, AttemptChannel, ServerClient
from labci_runner.errors import (
    CheckoutFailed,
    ExecutorError,
    LabciRunnerError,
    MetricsInvalid,
    StaleAttempt,
)
from labci_runner.executors.base import ExecutionContext, Executor, JobOutcome, StepResult
from labci_runner.logs import LogSink
from labci_runner.metrics import read_metrics
from labci_spec import Job

logger = logging.getLogger(__name__)

CHECKOUT_TIMEOUT_S = 600.0
StopReason = Literal["cancelled", "shutdown"]
JobKey = tuple[int, int]


@dataclass
class RunningJob:
    """A job attempt in flight: the task to cancel, and why it was cancelled."""

    task: asyncio.Task[object]
    stop_reason: StopReason | None = None


class RunningJobs:
    """The attempts this runner is running; heartbeats list them and cancel through them."""

    def __init__(self) -> None:
        self._jobs: dict[JobKey, RunningJob] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def keys(self) -> list[JobKey]:
        return list(self._jobs)

    @contextlib.contextmanager
    def track(self, job_id: int, attempt: int) -> Iterator[RunningJob]:
        entry = RunningJob(asyncio.current_task())  # type: ignore[arg-type]
        self._jobs[(job_id, attempt)] = entry
        self._idle.clear()
        try:
            yield entry
        finally:
            self._jobs.pop((job_id, attempt), None)
            if not self._jobs:
                self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job runs; False if some still did after `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def stop(self, key: JobKey, reason: StopReason) -> bool:
        entry = self._jobs.get(key)
        if entry is None or entry.task.done():
            return False
        entry.stop_reason = entry.stop_reason or reason
        entry.task.cancel()
        return True

    def stop_all(self, reason: StopReason) -> None:
        for key in self.keys():
            self.stop(key, reason)


@dataclass(frozen=True)
class JobRuntime:
    """What the job flow needs, built once per agent and shared by every job."""

    client: ServerClient
    executor: Executor
    mirrors: MirrorCache
    running: RunningJobs
    jobs_dir: Path


@dataclass(frozen=True)
class Report:
    """The body of the `complete` call."""

    outcome: str
    reason: str | None = None
    metrics: dict[str, float] | None = None
    metrics_error: str | None = None


async def execute_job(rt: JobRuntime, job_id: int, attempt: int) -> str:
    """Run one attempt end to end; return its outcome ("stale" when dropped on a 409)."""
    with rt.running.track(job_id, attempt) as entry:
        try:
            assignment = await rt.client.fetch_job(job_id, attempt)
        except StaleAttempt:
            logger.info("job %d attempt %d is stale, dropped", job_id, attempt)
            return "stale"
        except LabciRunnerError as exc:
            # Without the job token nothing can be reported; the server's lease reaper
            # retries or fails the attempt.
            logger.error("job %d attempt %d: cannot fetch: %s", job_id, attempt, exc)
            return "fetch failed"
        job_dir = rt.jobs_dir / f"{job_id}-{attempt}"
        try:
            return await _run_attempt(rt, assignment, job_dir, entry)
        except StaleAttempt:
            _announce(job_id, attempt, "stopped: the server moved on (409)")
            return "stale"
        finally:
            await asyncio.to_thread(shutil.rmtree, job_dir, ignore_errors=True)


async def _run_attempt(
    rt: JobRuntime, assignment: Assignment, job_dir: Path, entry: RunningJob
) -> str:
    channel = rt.client.channel(assignment)
    started = time.monotonic()
    _announce(assignment.job_id, assignment.attempt, f"starting at {assignment.commit_sha[:7]}")
    try:
        async with LogSink(channel.logs) as logs:
            report = await _execute(rt, assignment, channel, job_dir, logs)
    except asyncio.CancelledError:
        if entry.stop_reason == "shutdown":
            report = Report("error", "the runner stopped while the job was running")
        else:
            report = Report("cancelled", "cancelled")
        await _complete(channel, report, started)
        raise
    except StaleAttempt:
        raise
    except (CheckoutFailed, ExecutorError) as exc:
        report = Report("error", str(exc))
    except Exception as exc:
        # Whatever broke in the runner, the job still gets its one completion report.
        logger.exception("job %d: runner error", assignment.job_id)
        report = Report("error", f"runner error: {type(exc).__name__}: {exc}"[:300])
    await _complete(channel, report, started)
    return report.outcome


async def _execute(
    rt: JobRuntime, assignment: Assignment, channel: AttemptChannel, job_dir: Path, logs: LogSink
) -> Report:
    job = _parse_job(assignment)
    src, output, scratch = job_dir / "src", job_dir / "output", job_dir / "scratch"
    await asyncio.to_thread(_fresh_dirs, job_dir, output, scratch)
    checkout_started = time.monotonic()
    async with asyncio.timeout(CHECKOUT_TIMEOUT_S):
        await rt.mirrors.checkout(assignment.clone_url, assignment.commit_sha, src)
    checkout_ms = (time.monotonic() - checkout_started) * 1000
    await channel.start()
    await logs.write(0, "system", f"checked out {assignment.commit_sha} in {checkout_ms:.0f} ms")
    ctx = ExecutionContext(
        workspace=src,
        output_dir=output,
        scratch_dir=scratch,
        server_env=assignment.env,
        timeout_s=float(assignment.timeout_s or job.timeout_s),
        logs=logs,
        report_step=partial(_report_step, channel),
    )
    outcome = await rt.executor.run(job, ctx)
    return await _add_metrics(job, output, outcome)


def _parse_job(assignment: Assignment) -> Job:
    try:
        return Job.model_validate(assignment.job)
    except pydantic.ValidationError as exc:
        # A job this runner cannot read is version skew between server and runner.
        raise ExecutorError(f"cannot read the job definition: {exc.error_count()} errors") from exc


def _fresh_dirs(job_dir: Path, *dirs: Path) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)  # left over from a crashed runner
    for path in dirs:
        path.mkdir(parents=True)


async def _add_metrics(job: Job, output: Path, outcome: JobOutcome) -> Report:
    """Attach metrics; a bad metrics file turns a success into an "error"."""
    if job.metrics is None or outcome.outcome not in ("success", "failure"):
        return Report(outcome.outcome, outcome.reason)
    try:
        metrics = await read_metrics(output, job.metrics.file)
    except MetricsInvalid as exc:
        if outcome.outcome == "success":
            return Report("error", str(exc), None, str(exc))
        return Report(outcome.outcome, outcome.reason, None, str(exc))
    return Report(outcome.outcome, outcome.reason, metrics)


async def _report_step(channel: AttemptChannel, result: StepResult) -> None:
    await channel.step(
        result.index,
        status=result.status,
        exit_code=result.exit_code,
        started_at=result.started_at,
        finished_at=result.finished_at,
    )


async def _complete(channel: AttemptChannel, report: Report, started: float) -> None:
    try:
        await channel.complete(
            report.outcome,
            reason=report.reason,
            metrics=report.metrics,
            metrics_error=report.metrics_error,
        )
    except StaleAttempt:
        raise
    except LabciRunnerError as exc:
        # The lease will expire and the server's reaper decides; nothing more to do here.
        logger.error("job %d: cannot report completion: %s", channel.job_id, exc)
    elapsed_s = time.monotonic() - started
    detail = f" ({report.reason})" if report.reason and report.outcome != "success" else ""
    _announce(channel.job_id, channel.attempt, f"{report.outcome} in {elapsed_s:.1f}s{detail}")


def _announce(job_id: int, attempt: int, what: str) -> None:
    """The one progress line per job event that a lab admin watches scroll by."""
    print(f"job {job_id} attempt {attempt}: {what}", flush=True)
