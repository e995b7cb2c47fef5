"""What the database says about a commit's measurement of a bisection's metric, and how a
bisection asks for one.

Any finished result of the context at the commit counts, whatever measured it (a push to
another branch, a pull request whose head it was, a base measured for one, an earlier
bisection): the same commit runs the same code. Only when there is none does a bisection
start a run: a `baseline` event at the commit on the default branch, which the planner runs
like a push there, limited to the jobs that report metrics (and what they need). Its
delivery id names the repository, the commit and the workflow file, not the bisection, so
the bisections of several metrics of one change (accuracy and loss moved together) share
each run, and the budget counts it once.
"""

from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import Compare, JobInstance

from ..db.models import TERMINAL_JOB_STATES, Bisection, Job
from ..db.queries.baselines import ContextResult, results_at_commit
from ..db.queries.bisections import DELIVERY_PREFIX
from ..db.queries.events import event_by_delivery, get_event, insert_event
from ..db.queries.runs import runs_for_event
from ..results.autobase import KIND as BASELINE_KIND
from ..results.baseline import measured


@dataclass(frozen=True)
class Measured:
    run_id: int
    values: list[float]  # the metric's samples: one per successful job (repeat, seed)
    rule: Compare | None  # the metric's `compare` rule in that run's job
    bisection_run: bool = False  # a bisection asked for that run

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


@dataclass(frozen=True)
class Waiting:
    """A run at the commit is measuring it, or about to."""


@dataclass(frozen=True)
class Unmeasurable:
    reason: str  # for a person, e.g. "the job failed at this commit (run 12)"
    run_id: int | None = None


@dataclass(frozen=True)
class Unasked:
    """Nothing measured the commit and no bisection asked for it yet."""


Probe = Measured | Waiting | Unmeasurable | Unasked


def delivery_id(repository_id: int, sha: str, workflow_path: str) -> str:
    digest = hashlib.sha256(workflow_path.encode()).hexdigest()[:16]
    return f"{DELIVERY_PREFIX}{repository_id}:{sha}:{digest}"


async def probe(session: AsyncSession, bisection: Bisection, sha: str) -> Probe:
    """Where measuring `sha` for `bisection` stands."""
    results = await results_at_commit(
        session, repository_id=bisection.repository_id, context=bisection.context, commit_sha=sha
    )
    for result in results:
        found = measured(result)
        if found is not None and bisection.metric in found.samples:
            return Measured(
                result.run.id or 0,
                found.samples[bisection.metric],
                _rule(result.jobs, bisection.metric),
                bisection_run=await _asked_by_bisection(session, result.run.event_id),
            )
    if any(job.state not in TERMINAL_JOB_STATES for r in results for job in r.jobs):
        return Waiting()
    event = await event_by_delivery(
        session, delivery_id(bisection.repository_id, sha, bisection.workflow_path)
    )
    if event is None:
        return _unmeasurable(results[0], bisection.metric) if results else Unasked()
    if event.state == "received":
        return Waiting()
    if event.state == "failed":
        return Unmeasurable(f"its run could not be planned: {event.error or 'no reason given'}")
    if results:  # the run ended without the metric
        return _unmeasurable(results[0], bisection.metric)
    runs = await runs_for_event(session, event.id or 0)
    if runs and runs[0].error:
        first = runs[0].error.splitlines()[0]
        return Unmeasurable(f"{bisection.workflow_path} cannot run there: {first}", runs[0].id)
    return Unmeasurable(f"there is no job for {bisection.context} at this commit")


async def ask(session: AsyncSession, bisection: Bisection, sha: str, provider: str) -> int | None:
    """Start a bisection run at `sha`: the new event's id, None when one was asked already."""
    return await insert_event(
        session,
        {
            "delivery_id": delivery_id(bisection.repository_id, sha, bisection.workflow_path),
            "provider": provider,
            "kind": BASELINE_KIND,
            "workflow_path": bisection.workflow_path,
            "repository_id": bisection.repository_id,
            "commit_sha": sha,
            "branch": bisection.branch,
        },
    )


async def _asked_by_bisection(session: AsyncSession, event_id: int) -> bool:
    event = await get_event(session, event_id)
    return event is not None and event.delivery_id.startswith(DELIVERY_PREFIX)


def _unmeasurable(result: ContextResult, metric: str) -> Unmeasurable:
    states = ", ".join(sorted({job.state for job in result.jobs}))
    if any(job.state == "success" for job in result.jobs):
        why = f"the job did not report {metric} at this commit"
    else:
        why = f"the job did not succeed at this commit ({states})"
    return Unmeasurable(f"{why} (run {result.run.id})", result.run.id)


def _rule(jobs: list[Job], metric: str) -> Compare | None:
    for job in jobs:
        metrics = JobInstance.model_validate(job.spec).job.metrics
        if metrics is not None and metric in metrics.compare:
            return metrics.compare[metric]
    return None
