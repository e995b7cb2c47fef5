"""The steps of one job attempt, whatever runs them: conditions, rendering, timeouts, results.

For each step, in order:

1. `if:` decides (default `success()`: every earlier step succeeded, or failed with
   `continue-on-error`); a step that does not run is reported "skipped".
2. `${{ }}` in the job's and step's `env`, the step's `run`, `name` and
   `working-directory` is rendered with `matrix`, `inputs`, `env` and `secrets`.
3. The executor's `StepLauncher` runs it under the step's `timeout-minutes`, inside the
   job's own timeout scope, and records the exit code; the loop reports the result.

A step that fails without `continue-on-error` fails the job; later steps still get their
`if:` (so `always()` and `failure()` steps run). A job timeout or a cancellation stops
everything: the running step is killed, the rest are reported "skipped".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from labci_runner.errors import LabciRunnerError, StepSetupFailed
from labci_runner.executors.base import (
    ExecutionContext,
    JobOutcome,
    Outcome,
    StepResult,
    describe_timeout,
)
from labci_spec import EvalContext, ExpressionError, JobInstance, Progress, Step, render, should_run


@dataclass(frozen=True)
class StepPlan:
    """A step ready to run: everything rendered, paths still relative to the workspace."""

    index: int
    name: str
    script: str
    shell: str | None
    env: dict[str, str]
    workdir: str
    timeout_s: float | None
    continue_on_error: bool


@dataclass
class StepRun:
    """Filled in by the launcher while the step runs, read by the loop whatever happened."""

    plan: StepPlan
    started_at: float | None = None
    exit_code: int | None = None
    # Why it failed, when the launcher knows better than the exit code ("ran out of memory").
    reason: str | None = None


Started = Callable[[StepRun], Awaitable[None]]


class StepLauncher(Protocol):
    async def launch(self, run: StepRun, ctx: ExecutionContext, started: Started) -> None:
        """Run one step to its end, setting `run.started_at` and `run.exit_code`.

        Call `started(run)` once the step's process exists. If the calling task is
        cancelled (a timeout, a cancel), kill everything the step started, set the exit
        code of the killed process, then re-raise. `ExecutorError` when the step cannot
        be started at all.
        """
        ...


@dataclass
class _Progress:
    results: list[StepResult] = field(default_factory=list)
    failed: StepResult | None = None
    failed_reason: str | None = None
    timed_out: bool = False


async def run_steps(
    instance: JobInstance, ctx: ExecutionContext, launcher: StepLauncher
) -> JobOutcome:
    """Run `instance`'s steps per the module docstring; re-raises CancelledError."""
    progress = _Progress()
    try:
        async with asyncio.timeout(ctx.timeout_s) as scope:
            for index, step in enumerate(instance.job.steps):
                await _one_step(instance, index, step, ctx, launcher, progress)
    except TimeoutError:
        if not scope.expired():
            raise
        reason = describe_timeout(ctx.timeout_s)
        await _stop_rest(instance, ctx, progress, reason)
        return JobOutcome("timed_out", reason, progress.results)
    except asyncio.CancelledError:
        await _stop_rest(instance, ctx, progress, "cancelled")
        raise
    except LabciRunnerError as exc:  # the executor itself failed: later steps never ran
        await _stop_rest(instance, ctx, progress, f"stopped: {exc}")
        raise
    if progress.failed is None:
        return JobOutcome("success", None, progress.results)
    outcome: Outcome = "timed_out" if progress.timed_out else "failure"
    return JobOutcome(outcome, progress.failed_reason, progress.results)


async def _one_step(
    instance: JobInstance,
    index: int,
    step: Step,
    ctx: ExecutionContext,
    launcher: StepLauncher,
    progress: _Progress,
) -> None:
    label = f"step {index + 1} ({step.display_name})"
    try:
        contexts = {**instance.contexts, "github": dict(ctx.github)}
        runs = should_run(
            step.if_, contexts=contexts, progress=Progress(failed=bool(progress.failed))
        )
        plan = plan_step(instance, index, step, secrets=ctx.secrets) if runs else None
    except ExpressionError as exc:
        await ctx.logs.write(index, "system", f"{label}: {exc.message}")
        await _finish(ctx, progress, StepResult(index, "failure"), f"{label}: {exc.message}")
        return
    if plan is None:
        await _report(ctx, progress, StepResult(index, "skipped"))
        return
    await ctx.logs.write(index, "system", f"▶ {plan.name}")
    run = StepRun(plan)
    reason: str | None = None
    interrupted = True
    try:
        async with asyncio.timeout(plan.timeout_s) as step_scope:
            await launcher.launch(run, ctx, _started(ctx))
        interrupted = False
    except TimeoutError:
        if not step_scope.expired():
            raise
        interrupted = False
        reason = f"{label} {describe_timeout(plan.timeout_s or 0)}"
        await ctx.logs.write(index, "system", reason)
    except StepSetupFailed as exc:
        interrupted = False
        reason = f"{label}: {exc}"
        await ctx.logs.write(index, "system", reason)
    finally:
        if interrupted:  # job timeout, cancellation: the killed step is recorded as failed
            # Best effort: a report that fails here must not replace the cancellation.
            with contextlib.suppress(LabciRunnerError):
                await _report(ctx, progress, _result(run))
    result = _result(run)
    if result.status == "success":
        await _report(ctx, progress, result)
        return
    reason = reason or (f"{label} {run.reason}" if run.reason else None)
    if reason is None and await asyncio.to_thread(disk_full, ctx.workspace):
        reason = f"{label} exited with {run.exit_code}: no space left on the runner's disk"
    reason = reason or f"{label} exited with {run.exit_code}"
    if plan.continue_on_error:
        await ctx.logs.write(index, "system", f"{reason}; continuing (continue-on-error)")
        await _report(ctx, progress, result)
    else:
        await _finish(ctx, progress, result, reason, timed_out=step_scope.expired())


DISK_FULL_BYTES = 1024 * 1024


def disk_full(path: Path) -> bool:
    """Whether the filesystem holding `path` has (almost) no space left for its user."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < DISK_FULL_BYTES


def _result(run: StepRun) -> StepResult:
    status: Literal["success", "failure"] = "success" if run.exit_code == 0 else "failure"
    return StepResult(run.plan.index, status, run.exit_code, run.started_at, time.time())


async def _finish(
    ctx: ExecutionContext,
    progress: _Progress,
    result: StepResult,
    reason: str,
    *,
    timed_out: bool = False,
) -> None:
    """Record a step failure; the first one decides the job's reason."""
    if progress.failed is None:
        progress.failed, progress.failed_reason, progress.timed_out = result, reason, timed_out
    await _report(ctx, progress, result)


def _started(ctx: ExecutionContext) -> Started:
    async def started(run: StepRun) -> None:
        run.started_at = run.started_at or time.time()
        await ctx.report_step(StepResult(run.plan.index, "running", started_at=run.started_at))

    return started


async def _report(ctx: ExecutionContext, progress: _Progress, result: StepResult) -> None:
    progress.results.append(result)
    await ctx.report_step(result)


async def _stop_rest(
    instance: JobInstance, ctx: ExecutionContext, progress: _Progress, why: str
) -> None:
    """Report the steps that will not run; best effort, as this runs while the job is
    being stopped (a failing report must not replace a cancellation or a timeout)."""
    reported = {r.index for r in progress.results}
    last = max(reported, default=0)
    with contextlib.suppress(LabciRunnerError):
        await ctx.logs.write(last, "system", why)
        for index in range(len(instance.job.steps)):
            if index not in reported:
                await _report(ctx, progress, StepResult(index, "skipped"))


def plan_step(
    instance: JobInstance, index: int, step: Step, *, secrets: Mapping[str, str]
) -> StepPlan:
    """Render what the step needs; raises ExpressionError when an expression cannot be."""
    base = {"matrix": instance.matrix, "inputs": instance.inputs, "secrets": dict(secrets)}

    def expand(text: str, env: Mapping[str, str]) -> str:
        return render(text, EvalContext(contexts={**base, "env": dict(env)}))

    job_env = {name: expand(value, {}) for name, value in instance.job.env.items()}
    step_env = {name: expand(value, job_env) for name, value in step.env.items()}
    env = {**job_env, **step_env}
    defaults = instance.job.defaults.run
    workdir = step.working_directory or defaults.working_directory or ""
    timeout_s = step.timeout_minutes * 60 if step.timeout_minutes else None
    return StepPlan(
        index=index,
        name=expand(step.name, env) if step.name else step.display_name,
        script=expand(step.run, env),
        shell=step.shell or defaults.shell,
        env=env,
        workdir=expand(workdir, env),
        timeout_s=timeout_s,
        continue_on_error=step.continue_on_error,
    )
