"""Which earlier result a context is judged against, and the noise of its metric history.

- A pull request: the newest finished result of the same context at the PR's base commit,
  else the newest on its base branch (a run that measured the branch itself: a push, a
  baseline, a manual run).
- A push: the result at the commit the branch pointed at before (the push's `before`).
- A manual run: the branch's newest result before this run.
Among equals, a result measured on the same hardware (GPU models and runner labels) as
the head is preferred; a baseline from other hardware is used, and flagged.

A result counts when every job of the context is terminal and at least one succeeded
with metrics; its samples are the successful jobs' values (one per repeat).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import JobInstance
from labci_spec.matrix import seed_values

from ..db.models import TERMINAL_JOB_STATES, Event, Job, Run
from ..db.queries.baselines import ContextResult, results_at_commit, results_on_branch
from ..forge.base import ZERO_SHA
from .compare import Summary, summarize

# How many earlier results of the base branch estimate a metric's noise.
HISTORY_RUNS = 10


@dataclass(frozen=True)
class Hardware:
    gpu_models: tuple[str, ...]
    labels: tuple[str, ...]

    def describe(self) -> str:
        gpus = ", ".join(_counted(self.gpu_models)) or "no GPU"
        return f"{gpus} · {', '.join(self.labels) or 'no labels'}"


@dataclass(frozen=True)
class Measured:
    """A usable earlier result: its samples per metric, and where it was measured."""

    run: Run
    samples: dict[str, list[float]]
    hardware: Hardware


@dataclass(frozen=True)
class Baseline:
    measured: Measured
    source: str  # "base commit" | "base branch main" | "previous commit" | ...
    same_hardware: bool


def hardware_of(jobs: Iterable[Job]) -> Hardware:
    models: list[str] = []
    labels: set[str] = set()
    for job in jobs:
        record: dict[str, Any] = job.record or {}
        models.extend(str(gpu.get("model") or "unknown GPU") for gpu in record.get("gpus") or [])
        labels.update(str(label) for label in record.get("runner_labels") or [])
    return Hardware(tuple(sorted(models)), tuple(sorted(labels)))


def samples_of(jobs: Sequence[Job], metrics: dict[int, dict[str, float]]) -> dict[str, list[float]]:
    """Per metric, the values of the jobs that succeeded (one per repeat)."""
    samples: dict[str, list[float]] = {}
    for job in jobs:
        if job.state != "success":
            continue
        for name, value in metrics.get(job.id or 0, {}).items():
            samples.setdefault(name, []).append(value)
    return samples


def added_seed(job: Job) -> bool:
    """A seed that adaptive repeats added: its value is not one its matrix declares."""
    instance = JobInstance.model_validate(job.spec)
    metrics, strategy = instance.job.metrics, instance.job.strategy
    if metrics is None or metrics.repeats is None or strategy is None:
        return False
    return instance.matrix.get(metrics.repeats) not in seed_values(strategy.matrix, metrics.repeats)


def measured(result: ContextResult) -> Measured | None:
    """The result's samples once its declared jobs are terminal; seeds still being added
    do not hold it back (their request says whether to wait for them)."""
    if any(job.state not in TERMINAL_JOB_STATES and not added_seed(job) for job in result.jobs):
        return None
    samples = samples_of(result.jobs, result.metrics)
    if not samples:
        return None
    ran = [job for job in result.jobs if job.state == "success"]
    return Measured(result.run, samples, hardware_of(ran))


async def find_baseline(
    session: AsyncSession, *, run: Run, event: Event | None, context: str, hardware: Hardware
) -> Baseline | None:
    for source, results in await _candidates(session, run, event, context):
        usable = [m for m in (measured(r) for r in results) if m is not None]
        if usable:
            same = [m for m in usable if m.hardware == hardware]
            chosen = (same or usable)[0]
            return Baseline(chosen, source, same_hardware=bool(same))
    return None


async def _candidates(
    session: AsyncSession, run: Run, event: Event | None, context: str
) -> list[tuple[str, list[ContextResult]]]:
    repo = run.repository_id
    if run.trigger == "pull_request" and event is not None:
        found: list[tuple[str, list[ContextResult]]] = []
        if _known(event.base_sha):
            at_base = await results_at_commit(
                session, repository_id=repo, context=context, commit_sha=event.base_sha or ""
            )
            found.append(("base commit", at_base))
        if event.base_branch:
            on_branch = await results_on_branch(
                session, repository_id=repo, context=context, branch=event.base_branch
            )
            found.append((f"base branch {event.base_branch}", on_branch))
        return found
    if run.trigger == "push" and event is not None and _known(event.base_sha):
        before = await results_at_commit(
            session, repository_id=repo, context=context, commit_sha=event.base_sha or ""
        )
        return [("previous commit", before)]
    if run.trigger in ("workflow_dispatch", "schedule"):
        earlier = await results_on_branch(
            session, repository_id=repo, context=context, branch=run.branch, before_run_id=run.id
        )
        return [(f"previous result on {run.branch}", earlier)]
    return []


async def measuring_at_base(
    session: AsyncSession, *, run: Run, event: Event | None, context: str
) -> str | None:
    """The base commit, when a pull request's base is being measured right now (its run of
    the context has unfinished jobs): worth waiting for rather than judging without."""
    if run.trigger != "pull_request" or event is None or not _known(event.base_sha):
        return None
    results = await results_at_commit(
        session, repository_id=run.repository_id, context=context, commit_sha=event.base_sha or ""
    )
    for result in results:
        if any(job.state not in TERMINAL_JOB_STATES for job in result.jobs):
            return event.base_sha
    return None


async def metric_history(
    session: AsyncSession,
    *,
    run: Run,
    event: Event | None,
    context: str,
    exclude_run_id: int | None = None,
) -> dict[str, list[Summary]]:
    """Per metric, the newest results on the base branch: each result's mean, spread and
    number of runs (one per repeat). `exclude_run_id` (the baseline itself) is left out, so
    its samples do not count twice."""
    branch = event.base_branch if run.trigger == "pull_request" and event else run.branch
    if not branch:
        return {}
    results = await results_on_branch(
        session,
        repository_id=run.repository_id,
        context=context,
        branch=branch,
        limit=HISTORY_RUNS,
    )
    history: dict[str, list[Summary]] = {}
    for result in results:
        if result.run.id in (run.id, exclude_run_id):
            continue
        found = measured(result)
        if found is None:
            continue
        for name, values in found.samples.items():
            summary = summarize(values)
            if summary is not None:
                history.setdefault(name, []).append(summary)
    return history


def _known(sha: str | None) -> bool:
    return bool(sha) and sha != ZERO_SHA


def _counted(models: Sequence[str]) -> list[str]:
    counts: dict[str, int] = {}
    for model in models:
        counts[model] = counts.get(model, 0) + 1
    return [f"{n}× {model}" if n > 1 else model for model, n in counts.items()]
