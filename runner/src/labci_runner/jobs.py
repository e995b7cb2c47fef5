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
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pydantic

from labci_runner.artifacts import keep_artifacts
from labci_runner.cache import RunnerCache
from labci_runner.checkout import COMMIT_SHA, MirrorCache
from labci_runner.client import Assignment, AttemptChannel, ServerClient
from labci_runner.errors import (
    CheckoutFailed,
    ExecutorError,
    LabciRunnerError,
    MetricsInvalid,
    StaleAttempt,
)
from labci_runner.executors.base import ExecutionContext, Executor, JobOutcome, StepResult
from labci_runner.gpus import GpuSampler, RunnerGpus
from labci_runner.jobcache import restore_job_cache, save_job_cache
from labci_runner.jobrecord import job_record
from labci_runner.logs import LogSink
from labci_runner.metrics import MetricLines, merge_metrics, read_metrics_files
from labci_runner.redact import Redactor
from labci_spec import JobInstance, github_context

logger = logging.getLogger(__name__)

CHECKOUT_TIMEOUT_S = 600.0
StopReason = Literal["cancelled", "shutdown"]
JobKey = tuple[int, int]


@dataclass
class RunningJob:
    """A job attempt in flight: the task to cancel, and why it was cancelled. Once its
    final report is on its way (`reporting`), nothing cancels it: a heartbeat answered
    just after the server recorded the job's end says "cancel" (the job is no longer
    running there), and cancelling then would cut the report the server already has."""

    task: asyncio.Task[object]
    stop_reason: StopReason | None = None
    reporting: bool = False


class RunningJobs:
    """The attempts this runner is running; heartbeats list them and cancel through them.

    `draining` is set when the runner is told to stop: it takes no new job, and heartbeats
    say so (the scheduler places nothing more here) while the running ones finish.
    """

    def __init__(self) -> None:
        self._jobs: dict[JobKey, RunningJob] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

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
        if entry is None or entry.task.done() or entry.reporting:
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
    cache: RunnerCache | None = None
    max_log_bytes: int | None = None
    log_uploads_in_flight: int = 2
    gpus: RunnerGpus | None = None
    runner_name: str = ""
    # GPU ids held by the attempts running now (a heartbeat re-checks only the others).
    held_gpus: dict[JobKey, tuple[str, ...]] = field(default_factory=dict)

    def gpus_in_use(self) -> set[str]:
        return {gpu for ids in self.held_gpus.values() for gpu in ids}


@dataclass(frozen=True)
class Report:
    """The body of the `complete` call."""

    outcome: str
    reason: str | None = None
    metrics: dict[str, float] | None = None
    metrics_error: str | None = None
    record: dict[str, Any] | None = None


class _Released(Exception):
    """The attempt cannot start here; the server gives it back to the scheduler."""


@dataclass(frozen=True)
class Prefetch:
    """What the server says the job will check out, sent with the job's message so that
    the commit is fetched into the mirror while the job itself is fetched: the two round
    trips overlap on the way to the first step. Only a hint: the fetched job decides what
    is checked out, and a wrong or failed prefetch costs a fetch, nothing else."""

    clone_url: str
    commit_sha: str


# What a server's clone URL looks like: a URL of these schemes, a local forge's absolute
# path, or ssh's scp-like `user@host:path`. Anything else in a hint (an option, git's
# `transport::address` form) is not fetched.
PREFETCH_URL = re.compile(r"(https?|ssh|git|file)://[^\s]+|/[^\s]*|[\w.-]+@[\w.-]+:[^\s:]+")


def prefetch_of(hint: object) -> Prefetch | None:
    """The hint from a job's message, if it is one worth acting on."""
    if not isinstance(hint, dict):
        return None
    url, sha = hint.get("clone_url"), hint.get("commit_sha")
    if not (isinstance(url, str) and isinstance(sha, str) and COMMIT_SHA.fullmatch(sha)):
        return None
    return Prefetch(url, sha) if PREFETCH_URL.fullmatch(url) else None


async def _prefetch(rt: JobRuntime, hint: Prefetch) -> None:
    try:
        await rt.mirrors.ensure_commit(hint.clone_url, hint.commit_sha)
    except CheckoutFailed as exc:  # the checkout tries again and reports what fails
        logger.info("prefetch of %s failed: %s", hint.commit_sha[:12], exc)


async def execute_job(
    rt: JobRuntime, job_id: int, attempt: int, prefetch: Prefetch | None = None
) -> str:
    """Run one attempt end to end; return its outcome ("stale" when dropped on a 409)."""
    fetching = asyncio.create_task(_prefetch(rt, prefetch)) if prefetch else None
    try:
        return await _execute_job(rt, job_id, attempt)
    finally:
        if fetching is not None and not fetching.done():
            # The attempt ended before its checkout waited for the prefetch (stale,
            # cancelled): a fetch left running would outlive it.
            fetching.cancel()
            await asyncio.gather(fetching, return_exceptions=True)


async def _execute_job(rt: JobRuntime, job_id: int, attempt: int) -> str:
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
        except StaleAttempt as exc:
            what = f"stopped: the server moved on ({exc.status})"
            _announce(job_id, attempt, what, assignment.redactor)
            return "stale"
        finally:
            await asyncio.to_thread(shutil.rmtree, job_dir, ignore_errors=True)


async def _run_attempt(
    rt: JobRuntime, assignment: Assignment, job_dir: Path, entry: RunningJob
) -> str:
    channel = rt.client.channel(assignment)
    started = time.monotonic()
    redactor = assignment.redactor
    _announce(
        assignment.job_id, assignment.attempt, f"starting at {assignment.commit_sha[:7]}", redactor
    )
    try:
        sink = LogSink(
            channel.logs, max_bytes=rt.max_log_bytes, max_in_flight=rt.log_uploads_in_flight
        )
        async with sink as logs:
            report = await _execute(rt, assignment, channel, job_dir, logs)
    except _Released as released:
        await channel.release(str(released))
        _announce(assignment.job_id, assignment.attempt, f"released: {released}", redactor)
        return "released"
    except asyncio.CancelledError:
        entry.reporting = True  # the hand-back or the report below is not cut either
        if entry.stop_reason == "shutdown":
            # Handed back, never reported: the server runs it again as a new attempt.
            await _hand_back(channel, "the runner was stopped before the job finished")
        else:
            await _complete(channel, Report("cancelled", "cancelled"), started)
        raise
    except StaleAttempt:
        raise
    except (CheckoutFailed, ExecutorError) as exc:
        report = Report("error", str(exc))
    except Exception as exc:
        # Whatever broke in the runner, the job still gets its one completion report.
        logger.exception("job %d: runner error", assignment.job_id)
        # Redacted before the cut, which could otherwise leave a secret's prefix.
        why = assignment.redactor.redact(f"runner error: {type(exc).__name__}: {exc}")
        report = Report("error", why[:300])
    entry.reporting = True
    await _complete(channel, report, started)
    return report.outcome


async def _execute(
    rt: JobRuntime, assignment: Assignment, channel: AttemptChannel, job_dir: Path, logs: LogSink
) -> Report:
    instance = _parse_job(assignment)
    await _check_gpus(rt, assignment, instance)
    key = (assignment.job_id, assignment.attempt)
    rt.held_gpus[key] = assignment.gpu_ids
    try:
        return await _checked_out_and_run(rt, assignment, instance, channel, job_dir, logs)
    finally:
        rt.held_gpus.pop(key, None)


async def _checked_out_and_run(
    rt: JobRuntime,
    assignment: Assignment,
    instance: JobInstance,
    channel: AttemptChannel,
    job_dir: Path,
    logs: LogSink,
) -> Report:
    src, output, scratch = job_dir / "src", job_dir / "output", job_dir / "scratch"
    await asyncio.to_thread(_fresh_dirs, job_dir, output, scratch)
    checkout_started = time.monotonic()
    await _start_and_check_out(rt, assignment, channel, src)
    checkout_ms = (time.monotonic() - checkout_started) * 1000
    await logs.write(0, "system", f"checked out {assignment.commit_sha} in {checkout_ms:.0f} ms")
    metric_lines = MetricLines()
    ctx = ExecutionContext(
        workspace=src,
        output_dir=output,
        scratch_dir=scratch,
        server_env=assignment.env,
        secrets=assignment.secrets,
        timeout_s=float(assignment.timeout_s or instance.job.timeout_s),
        logs=logs,
        report_step=partial(_report_step, channel),
        github=_github(assignment.env),
        on_stdout=metric_lines.feed,
        gpu_ids=assignment.gpu_ids,
        trusted=assignment.trusted,
    )
    to_save = await restore_job_cache(rt.cache, assignment, instance, src, logs)
    began = time.time()
    sampler = _sampler(rt, assignment)
    sampling = asyncio.create_task(sampler.run()) if sampler else None
    try:
        outcome = await rt.executor.run(instance, ctx)
    finally:
        if sampling is not None:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
    if to_save is not None and outcome.outcome == "success":
        await save_job_cache(rt.cache, to_save, src, logs)
    if instance.job.artifacts is not None:
        await keep_artifacts(channel, instance, output, logs)
    report = await _add_metrics(instance, output, outcome, metric_lines)
    record = job_record(rt.runner_name, rt.gpus, assignment, instance, outcome, sampler, began)
    return replace(report, record=record)


async def _start_and_check_out(
    rt: JobRuntime, assignment: Assignment, channel: AttemptChannel, src: Path
) -> None:
    """Tell the server the job started while its commit is checked out: the two round
    trips overlap instead of adding up on the way to the first step. The job is running
    from then on (its checkout is part of it), and a checkout that fails is reported as
    the job's error. A refused start (the server moved on: `StaleAttempt`) wins over
    whatever the checkout did, so the attempt stops without a report."""

    async def check_out() -> None:
        async with asyncio.timeout(CHECKOUT_TIMEOUT_S):
            await rt.mirrors.checkout(assignment.clone_url, assignment.commit_sha, src)

    started, checked_out = await asyncio.gather(
        channel.start(), check_out(), return_exceptions=True
    )
    for outcome in (started, checked_out):
        if isinstance(outcome, BaseException):
            raise outcome


async def _check_gpus(rt: JobRuntime, assignment: Assignment, instance: JobInstance) -> None:
    """Before anything runs on its GPUs: no leftover processes, enough free memory."""
    if not assignment.gpu_ids or rt.gpus is None:
        return
    need = instance.job.resources.gpu_memory_bytes
    problems = await rt.gpus.check(assignment.gpu_ids, need_mib=need // 2**20 if need else None)
    if problems:
        raise _Released("; ".join(problems.values()))


def _sampler(rt: JobRuntime, assignment: Assignment) -> GpuSampler | None:
    if not assignment.gpu_ids or rt.gpus is None or not rt.gpus.measuring:
        return None
    return GpuSampler(rt.gpus.probe, assignment.gpu_ids)


def _github(env: dict[str, str]) -> dict[str, str]:
    """The `github` fields `if:` conditions may read, from the job's LABCI_* variables."""
    pr = env.get("LABCI_PR_NUMBER", "")
    return github_context(
        event=env.get("LABCI_EVENT", ""),
        branch=env.get("LABCI_BRANCH", ""),
        base_branch=env.get("LABCI_BASE_BRANCH"),
        sha=env.get("LABCI_COMMIT_SHA", ""),
        pr_number=int(pr) if pr.isdigit() else None,
    )


def _parse_job(assignment: Assignment) -> JobInstance:
    try:
        return JobInstance.model_validate(assignment.job)
    except pydantic.ValidationError as exc:
        # A job this runner cannot read is version skew between server and runner.
        raise ExecutorError(f"cannot read the job definition: {exc.error_count()} errors") from exc


def _fresh_dirs(job_dir: Path, *dirs: Path) -> None:
    shutil.rmtree(job_dir, ignore_errors=True)  # left over from a crashed runner
    for path in dirs:
        path.mkdir(parents=True)


async def _add_metrics(
    instance: JobInstance, output: Path, outcome: JobOutcome, lines: MetricLines
) -> Report:
    """Attach metrics (files, then `::metric` lines); bad metrics turn a success into "error".

    A job with no `metrics:` section still reports the metric lines its steps printed.
    """
    if outcome.outcome not in ("success", "failure"):
        return Report(outcome.outcome, outcome.reason)
    spec = instance.job.metrics
    try:
        if lines.error:
            raise MetricsInvalid(lines.error)
        files = await read_metrics_files(output, spec.paths) if spec and spec.paths else {}
        metrics = merge_metrics(files, lines.metrics)
    except MetricsInvalid as exc:
        if outcome.outcome == "success":
            return Report("error", str(exc), None, str(exc))
        return Report(outcome.outcome, outcome.reason, None, str(exc))
    return Report(outcome.outcome, outcome.reason, metrics or None)


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
            record=report.record,
        )
    except StaleAttempt:
        raise
    except LabciRunnerError as exc:
        # The lease will expire and the server's reaper decides; nothing more to do here.
        logger.error("job %d: cannot report completion: %s", channel.job_id, exc)
    elapsed_s = time.monotonic() - started
    detail = f" ({report.reason})" if report.reason and report.outcome != "success" else ""
    what = f"{report.outcome} in {elapsed_s:.1f}s{detail}"
    _announce(channel.job_id, channel.attempt, what, channel.redactor)


async def _hand_back(channel: AttemptChannel, reason: str) -> None:
    """Release a stopped attempt (its logs are stored by now); the server's reaper decides
    if the release cannot be sent."""
    try:
        await channel.release(reason)
    except LabciRunnerError as exc:
        logger.error("job %d: cannot hand the job back: %s", channel.job_id, exc)
        return
    _announce(channel.job_id, channel.attempt, f"handed back: {reason}", channel.redactor)


def _announce(job_id: int, attempt: int, what: str, redactor: Redactor) -> None:
    """The one progress line per job event that a lab admin watches scroll by (redacted)."""
    print(redactor.redact(f"job {job_id} attempt {attempt}: {what}"), flush=True)
