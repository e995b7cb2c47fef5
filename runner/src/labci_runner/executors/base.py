"""The executor contract: how a job's steps are run, whatever runs them.

Lifecycle of one `Executor.run(job, ctx)` call, owned by the job flow (`jobs.py`):

1. The flow has checked out the commit into `ctx.workspace` and created an empty
   `ctx.output_dir`; `ctx.scratch_dir` is the executor's to use (script files).
2. Steps run in order. Before each, `ctx.report_step(index, "running", ...)`; after it,
   "success" or "failure" with the exit code. Once a step fails, every later step is
   reported "skipped" and not run.
3. The whole run sits in one `asyncio.timeout(ctx.timeout_s)` scope. On expiry the running
   step's processes get SIGTERM, `grace_s` later SIGKILL, and `run` *returns* a
   `JobOutcome("timed_out", reason)`: a timeout is a result, not an error.
4. If the calling task is cancelled (server-side cancel, runner shutdown) the processes are
   killed the same way, remaining steps are reported "skipped", and `CancelledError` is
   re-raised after cleanup — never swallowed.
5. Whatever happens, nothing the steps started outlives `run`.

Output goes to `ctx.logs` line by line, per stream. Concurrency: one `run` per job; an
executor instance may serve several jobs at once (slots > 1) and keeps no per-job state.
Errors: `ExecutorError` only when the executor itself cannot work (bash missing, workspace
unwritable); `StaleAttempt` from `report_step` propagates after the processes are killed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from labci_runner.logs import LogSink
from labci_spec import Job

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


class Executor(Protocol):
    async def run(self, job: Job, ctx: ExecutionContext) -> JobOutcome:
        """Run `job.steps` per the module docstring's lifecycle."""
        ...


def describe_timeout(timeout_s: float) -> str:
    """'timed out after 30 min' for whole minutes, else in seconds."""
    if timeout_s >= 60 and timeout_s % 60 == 0:
        return f"timed out after {int(timeout_s // 60)} min"
    return f"timed out after {timeout_s:g} s"
