"""What a finished job sets off in its run: dependents released or skipped, fail-fast.

Pure decisions over `JobRecord`s; `ingest.finish_job` applies them in its transaction.

- A `waiting` job is decided once every instance of every job it `needs` is terminal:
  its `if:` (implied `success()`) runs against how they went. It then becomes `pending`,
  or `skipped` (its condition is false, or a need was skipped), or `blocked` (a need
  failed or was cancelled and the condition does not ask for `failure()`/`always()`).
  A failure under `continue-on-error` counts as success, as in GitHub Actions.
- With `strategy.fail-fast` (the default), the first failing instance of a matrix job
  cancels its unfinished siblings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labci_spec import ExpressionError, JobInstance, Progress, should_run

from ..db.models import TERMINAL_JOB_STATES

FAILED_STATES = ("failure", "error", "timed_out", "blocked")


@dataclass(frozen=True)
class JobRecord:
    """A job row with what its workflow said about it."""

    id: int
    workflow_job: str
    key: str
    state: str
    needs: tuple[str, ...] = ()
    condition: str | None = None
    continue_on_error: bool = False
    fail_fast: bool = False
    contexts: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, *, id: int, workflow_job: str, state: str, spec: dict[str, Any]) -> JobRecord:
        instance = JobInstance.model_validate(spec)
        job = instance.job
        return cls(
            id=id,
            workflow_job=workflow_job,
            key=instance.key,
            state=state,
            needs=tuple(job.needs),
            condition=job.if_,
            continue_on_error=job.continue_on_error,
            fail_fast=job.strategy is not None and job.strategy.fail_fast,
            contexts=instance.contexts,
        )

    @property
    def effective_state(self) -> str:
        if self.state in FAILED_STATES[:3] and self.continue_on_error:
            return "success"
        return self.state


@dataclass(frozen=True)
class Decision:
    state: str  # pending | skipped | blocked | error
    reason: str | None = None


def decide_waiting(
    job: JobRecord, run_jobs: Sequence[JobRecord], github: Mapping[str, str]
) -> Decision | None:
    """What a waiting job becomes now; None while something it needs is unfinished."""
    needed = [r for r in run_jobs if r.workflow_job in job.needs]
    if any(r.state not in TERMINAL_JOB_STATES for r in needed):
        return None
    failed = [r for r in needed if r.effective_state in FAILED_STATES]
    cancelled = [r for r in needed if r.state == "cancelled"]
    skipped = [r for r in needed if r.state == "skipped"]
    progress = Progress(failed=bool(failed), cancelled=bool(cancelled), skipped=bool(skipped))
    try:
        runs = should_run(
            job.condition, contexts={**job.contexts, "github": dict(github)}, progress=progress
        )
    except ExpressionError as exc:
        return Decision("error", f"`if` cannot be evaluated: {exc.message}")
    if runs:
        return Decision("pending")
    if failed or cancelled:
        culprit = (failed + cancelled)[0]
        verb = "was cancelled" if culprit.state == "cancelled" else "failed"
        return Decision("blocked", f"needed job '{culprit.key}' {verb}")
    if skipped:
        return Decision("skipped", f"needed job '{skipped[0].key}' was skipped")
    return Decision("skipped", "`if` condition is false")


def fail_fast_victims(failed: JobRecord, run_jobs: Sequence[JobRecord]) -> list[JobRecord]:
    """The unfinished siblings that `failed` takes down with it under fail-fast."""
    # A blocked instance did not fail: its siblings are decided by the same needs.
    if not failed.fail_fast or failed.effective_state not in ("failure", "error", "timed_out"):
        return []
    return [
        r
        for r in run_jobs
        if r.workflow_job == failed.workflow_job
        and r.id != failed.id
        and r.state not in TERMINAL_JOB_STATES
    ]
