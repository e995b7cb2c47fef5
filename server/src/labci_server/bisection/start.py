"""Where a bisection starts: a judged push to the default branch whose metric history now
has a change point.

After a context of such a push is judged (in result ingestion, in its transaction: database
work only), each metric it compares is scanned for change points along the default branch
(`branch_history`), and the latest one gets a bisection unless it has one: the database's
unique key on (repository, context, metric, good, bad) decides. Listing the commits between
its two measured commits is forge I/O, so it is left to the worker (`advance`): the new
bisection waits in `listing` until the reconciler's next pass queues the worker's.

Only the latest change point: it is the one a push can have just revealed (one needs 3 runs
on each side, so it shows 3 pushes after the change); older ones were the latest once, and
got their bisection then. A repository whose budget is 0 still gets the row: it waits in
`budget` (nothing is listed or run), and a budget given later bisects it.
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import JobInstance

from ..db.models import Job, Run
from ..db.queries.bisections import insert_bisection
from ..db.queries.repositories import get_repository
from ..results.branch_history import SeriesKey, branch_series, default_branch_of
from ..results.changepoints import ChangePoint, find_change_points


async def note_change_points(
    session: AsyncSession, run: Run, context: str, members: list[Job]
) -> list[int]:
    """Start a bisection of the latest change point of each metric `context` compares, when
    `run` measured the default branch (a push); returns the new bisections' ids."""
    if run.trigger != "push" or not members:
        return []
    repo = await get_repository(session, run.repository_id)
    if repo is None or run.branch != default_branch_of(repo):
        return []
    metrics = JobInstance.model_validate(members[0].spec).job.metrics
    started = []
    for metric in sorted(metrics.compare if metrics is not None else {}):
        key = SeriesKey(workflow_name=run.workflow_name, context=context, metric=metric)
        series = await branch_series(session, repository=repo, series=key)
        found = find_change_points(series)
        if not found or found[-1].before_commit_sha == found[-1].commit_sha:
            continue
        values = _bisection_of(run, context, metric, found[-1], [p.mean for p in series])
        new_id = await insert_bisection(session, values)
        if new_id is not None:
            started.append(new_id)
    return started


def _bisection_of(
    run: Run, context: str, metric: str, change: ChangePoint, means: list[float]
) -> dict[str, Any]:
    return {
        "repository_id": run.repository_id,
        "workflow_path": run.workflow_path,
        "workflow_name": run.workflow_name,
        "context": context,
        "metric": metric,
        "branch": run.branch,
        "good_sha": change.before_commit_sha,
        "good_run_id": change.before_run_id,
        "bad_sha": change.commit_sha,
        "bad_run_id": change.run_id,
        "level_before": change.mean_before,
        "level_after": change.mean_after,
        "noise": _segment_spreads(means, change),
        "state": "listing",
        "steps": [],
        "low": -1,
        "high": -1,
    }


def _segment_spreads(means: list[float], change: ChangePoint) -> list[dict[str, float]]:
    """The run-to-run spread on each side of the change: what a commit measured once is
    judged against (`report.effect_of`)."""
    before = means[change.index - change.runs_before : change.index]
    after = means[change.index : change.index + change.runs_after]
    return [
        {"n": len(side), "mean": statistics.fmean(side), "std": statistics.stdev(side)}
        for side in (before, after)
        if len(side) >= 2
    ]
