"""One commit status per context: the verdict of a job, or of its repeats taken together.

A job's matrix instances that differ only in the `metrics.repeats` axis (seeds) are
samples of one experiment: they share a context, and its final status is posted once
all of them are terminal. The worst outcome decides the state; metrics are averaged.

How a terminal job state reads on the forge:
- success, failure, error, timed_out, cancelled: as the runner reported;
- a failure under `continue-on-error`: success, "failed, allowed (continue-on-error): …";
- skipped (its `if:` was false, or something it needs was skipped): success, "skipped: …";
- blocked (something it needs failed or was cancelled): failure, "blocked: …".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from ..db.models import Job
from ..forge.outbox import clip_description
from .report import describe_outcome, metrics_summary

# Worst first: the first of these present among a context's jobs decides its state.
# A failure outranks the cancellations fail-fast causes, as in GitHub Actions.
SEVERITY = ("error", "timed_out", "failure", "blocked", "cancelled", "success", "skipped")


@dataclass(frozen=True)
class Finished:
    """A terminal job, as the verdict of its context needs it."""

    key: str
    state: str
    reason: str | None
    metrics: dict[str, float]
    duration_s: float | None
    continue_on_error: bool = False

    @classmethod
    def of(cls, row: Job, metrics: dict[str, float]) -> Finished:
        took = row.finished_at - row.started_at if row.started_at and row.finished_at else None
        job: dict[str, Any] = row.spec.get("job", {})
        return cls(
            key=row.job_key,
            state=row.state,
            reason=row.reason,
            metrics=metrics,
            duration_s=took,
            continue_on_error=bool(job.get("continue-on-error")),
        )

    @property
    def effective_state(self) -> str:
        """What the job counts as for its context, its dependents and its run."""
        if self.state in ("failure", "error", "timed_out") and self.continue_on_error:
            return "success"
        return self.state


def context_verdict(jobs: Sequence[Finished]) -> tuple[str, str]:
    """(status state, description ≤ 140 chars) for a context whose jobs are all terminal."""
    if len(jobs) == 1 or all(j.state == "skipped" for j in jobs):
        return _single(jobs[0])
    worst = min(jobs, key=lambda j: SEVERITY.index(j.effective_state))
    state, _ = _single(worst)
    ran = [j for j in jobs if j.effective_state in ("success", "failure")]
    summary = metrics_summary(_means([j.metrics for j in ran if j.metrics]))
    bad = [j for j in jobs if j.effective_state not in ("success", "skipped")]
    if not bad:
        text = f"{summary} (mean of {len(ran)})" if summary else f"{len(jobs)} repeats passed"
        return state, clip_description(text)
    _, why = _single(worst)
    return state, clip_description(f"{len(bad)} of {len(jobs)} repeats not passed: {why}")


def _single(job: Finished) -> tuple[str, str]:
    if job.state == "skipped":
        return "success", clip_description(f"skipped: {job.reason or 'condition is false'}")
    if job.state == "blocked":
        return "failure", clip_description(f"blocked: {job.reason or 'a needed job failed'}")
    if job.effective_state != job.state:
        _, text = describe_outcome(
            job.state, reason=job.reason, metrics=job.metrics, duration_s=job.duration_s
        )
        return "success", clip_description(f"failed, allowed (continue-on-error): {text}")
    return describe_outcome(
        job.state, reason=job.reason, metrics=job.metrics, duration_s=job.duration_s
    )


def _means(samples: list[dict[str, float]]) -> dict[str, float]:
    names = sorted({name for sample in samples for name in sample})
    return {n: fmean([s[n] for s in samples if n in s]) for n in names}


def run_conclusion(jobs: Sequence[Finished]) -> str:
    """The run's conclusion: its worst job, counting skips and allowed failures as success."""
    states = [j.effective_state for j in jobs]
    for state in SEVERITY:
        if state in states:
            return "success" if state == "skipped" else ("failure" if state == "blocked" else state)
    return "success"
