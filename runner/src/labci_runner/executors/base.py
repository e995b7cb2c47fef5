"""The executor contract: how a job's steps are run, whatever runs them.

Lifecycle of one `Executor.run(instance, ctx)` call, owned by the job flow (`jobs.py`):

1. The flow has checked out the commit into `ctx.workspace` and created an empty
   `ctx.output_dir`; `ctx.scratch_dir` is the executor's to use (script files).
2. Steps run in order, through the shared loop in `labci_runner.steps` (conditions,
   rendering, continue-on-error, step timeouts). Before each, `ctx.report_step(index,
   "running", ...)`; after it, "success" or "failure" with the exit code, or "skipped".
3. The whole run sits in one `asyncio.timeout(ctx.timeout_s)` scope. On expiry the running
   step's processes get SIGTERM, `grace_s` later SIGKILL, and `run` *returns* a
   `JobOutcome("timed_out", reason)`: a timeout is a result, not an error.
4. If the calling task is cancelled (server-side cancel, runner shutdown) the processes are
   killed the same way, remaining steps are reported "skipped", and `CancelledError` is
   re-raised after cleanup — never swallowed.
5. Whatever happens, nothing the steps started outlives `run`.

Output goes to `ctx.logs` line by line, per stream; stdout lines also go to
`ctx.on_stdout` (where `::metric` lines are picked up). Concurrency: one `run` per job; an
executor instance may serve several jobs at once (slots > 1) and keeps no per-job state.
Errors: `ExecutorError` only when the executor itself cannot work (workspace unwritable,
an engine unreachable); later steps are then reported "skipped" and the job completes as
"error". What a workflow asks for and the machine lacks (a `shell:` not installed, a
missing `working-directory`) fails that step instead, like a non-zero exit.
`StaleAttempt` from `report_step` propagates after the processes are killed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from labci_runner.logs import LogSink
from labci_spec import JobInstance

StepStatus = Literal["running", "success", "failure", "skipped"]
Outcome = Literal["success", "failure", "error", "cancelled", "timed_out"]


@dataclass(frozen=True)
class StepResult:
    """One step's report, as the protocol's `steps/{index}` endpoint takes it."""

    index: int
    status: StepStatus
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


ReportStep = Callable[[StepResult], Awaitable[None]]


@dataclass(frozen=True)
class JobOutcome:
    """How the steps ended; `reason` explains anything but success, for a person."""

    outcome: Outcome
    reason: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    # For the job's record: what ran it (executor, image and digest, effective limits).
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionContext:
    """Where and how one job attempt runs; built by the job flow."""

    workspace: Path
    output_dir: Path
    scratch_dir: Path
    server_env: Mapping[str, str]
    timeout_s: float
    logs: LogSink
    report_step: ReportStep
    # The `github` fields `if:` conditions read (event name, branches, sha).
    github: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    on_stdout: Callable[[str], None] | None = None
    # The GPUs the scheduler assigned to this job (device indexes or UUIDs); none for CPU jobs.
    gpu_ids: Sequence[str] = ()
    # False for a fork's code: only a containers-only runner may run it.
    trusted: bool = True


class Executor(Protocol):
    async def run(self, instance: JobInstance, ctx: ExecutionContext) -> JobOutcome:
        """Run `instance.job.steps` per the module docstring's lifecycle."""
        ...


def describe_timeout(timeout_s: float) -> str:
    """'timed out after 30 min' for whole minutes, else in seconds."""
    if timeout_s >= 60 and timeout_s % 60 == 0:
        return f"timed out after {int(timeout_s // 60)} min"
    return f"timed out after {timeout_s:g} s"
