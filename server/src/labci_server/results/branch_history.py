"""A metric's history along a branch, with the change points of the repository's default
branch: what the history API and the trend chart show, and where a bisection starts.

Change points are looked for on the default branch alone: it is the line that merged work
lands on, so a lasting shift there is a change someone made. A topic branch's few runs are
better judged by its pull request's comparison. They are found in the newest
`CHANGE_POINT_RUNS` runs whatever a caller shows, so that a chart of 30 runs and the API's
50 agree on where a level changed; a caller showing fewer runs gets the change points whose
two runs (the last before, the first after) are both among those it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import Repository
from ..db.queries.history import MetricSamples, metric_history
from .changepoints import DEFAULT_RULES, ChangePoint, ChangePointRules, find_change_points

FALLBACK_DEFAULT_BRANCH: Final = "main"
CHANGE_POINT_RUNS: Final = 200


def default_branch_of(repository: Repository) -> str:
    """The repository's default branch as its forge last said, "main" until labci knows."""
    return repository.default_branch or FALLBACK_DEFAULT_BRANCH


@dataclass(frozen=True)
class MetricTrend:
    samples: list[MetricSamples]  # newest first, at most the `limit` asked for
    # Oldest first, between runs in `samples`; None on a branch other than the default.
    change_points: list[ChangePoint] | None


@dataclass(frozen=True)
class SeriesKey:
    """Which metric of which job: `context` is the job's status context (labci/wf/job)."""

    workflow_name: str
    context: str
    metric: str


async def metric_trend(
    session: AsyncSession,
    *,
    repository: Repository,
    series: SeriesKey,
    branch: str,
    limit: int,
    rules: ChangePointRules = DEFAULT_RULES,
) -> MetricTrend:
    """The newest `limit` runs' values of the metric on `branch`, and on the default branch
    the change points among them."""
    on_default = branch == default_branch_of(repository)
    scanned = await _history(
        session,
        repository=repository,
        series=series,
        branch=branch,
        limit=max(limit, CHANGE_POINT_RUNS) if on_default else limit,
    )
    shown = scanned[:limit]
    if not on_default:
        return MetricTrend(samples=shown, change_points=None)
    runs = {s.run_id for s in shown}
    found = find_change_points(scanned[::-1], rules)
    between = [c for c in found if c.run_id in runs and c.before_run_id in runs]
    return MetricTrend(samples=shown, change_points=between)


async def branch_change_points(
    session: AsyncSession,
    *,
    repository: Repository,
    series: SeriesKey,
    runs: int = CHANGE_POINT_RUNS,
    rules: ChangePointRules = DEFAULT_RULES,
) -> list[ChangePoint]:
    """The change points of the metric in the newest `runs` runs of the default branch,
    oldest first (the last is the latest).

    For bisection: each carries the two measured commits around the change, the last at
    the old level (`before_commit_sha`) and the first at the new one (`commit_sha`): the
    commit that moved the metric is after the former and at or before the latter.
    """
    samples = await branch_series(session, repository=repository, series=series, runs=runs)
    return find_change_points(samples, rules)


async def branch_series(
    session: AsyncSession,
    *,
    repository: Repository,
    series: SeriesKey,
    runs: int = CHANGE_POINT_RUNS,
) -> list[MetricSamples]:
    """The metric in the newest `runs` runs of the default branch, oldest first: the series
    `branch_change_points` scans (a change point's `index` is a position in it)."""
    samples = await _history(
        session,
        repository=repository,
        series=series,
        branch=default_branch_of(repository),
        limit=runs,
    )
    return samples[::-1]


async def _history(
    session: AsyncSession, *, repository: Repository, series: SeriesKey, branch: str, limit: int
) -> list[MetricSamples]:
    return await metric_history(
        session,
        repository_id=repository.id or 0,
        workflow_name=series.workflow_name,
        context=series.context,
        metric=series.metric,
        branch=branch,
        limit=limit,
    )
