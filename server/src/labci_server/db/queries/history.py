"""A branch's history as READMEs and dashboards show it: the workflow's latest status and a
metric's values run after run.

Only runs that measured the branch itself as it stood count (`BRANCH_TRIGGERS` but
`baseline`): a pull request's run says nothing about the branch it wants to change, and a
baseline measured for a pull request may be of an older commit, and only of some jobs. Each function is a fixed, small number of
queries whatever the number of runs, jobs or repeats.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import and_, case, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from ..models import TERMINAL_JOB_STATES, ContextVerdict, Job, Metric, Repository, Run
from .baselines import BRANCH_TRIGGERS

HISTORY_TRIGGERS = tuple(t for t in BRANCH_TRIGGERS if t != "baseline")

# A verdict in one of these states fails the run even when every job succeeded: a gated
# metric regressed.
FAILED_VERDICT_STATES = ("failure", "error")

# A metric row of the job's current attempt: an earlier attempt's numbers are not its result.
_current_metric = and_(col(Metric.job_id) == col(Job.id), col(Metric.attempt) == col(Job.attempt))


@dataclass(frozen=True)
class BranchRun:
    """The newest run of a workflow on a branch, and whether a verdict of it failed."""

    run: Run
    verdict_failed: bool


@dataclass(frozen=True)
class MetricSamples:
    """One run's values of a metric: one per successful job (repeat, seed) that reported it."""

    run_id: int
    commit_sha: str
    time_s: float  # when the run finished, or was created if it has no finish time
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1); None for a single value."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


async def repositories_named(session: AsyncSession, *, owner: str, name: str) -> list[Repository]:
    """Repositories a badge URL's `owner/name` can mean, GitHub's first.

    A GitHub repository matches its full name exactly. A local (`git`) repository is named
    by its path, so it matches when the path's last two components are `owner` and `name`,
    a trailing `.git` on either side ignored: `team/model` is `/srv/git/team/model.git`.
    """
    stmt = (
        select(Repository)
        .where(
            or_(
                and_(
                    Repository.provider == "github",
                    # GitHub ignores case in names; so do its README links.
                    func.lower(Repository.full_name) == f"{owner}/{name}".lower(),
                ),
                and_(
                    Repository.provider == "git",
                    col(Repository.full_name).contains(f"/{owner}/", autoescape=True),
                ),
            )
        )
        .order_by(col(Repository.id))
    )
    rows = (await session.exec(stmt)).all()
    wanted = (owner, name.removesuffix(".git"))
    github = [repo for repo in rows if repo.provider == "github"]
    local = [
        repo for repo in rows if repo.provider == "git" and path_tail(repo.full_name) == wanted
    ]
    return github + local


def path_tail(full_name: str) -> tuple[str, str] | None:
    """A local repository's owner and name, as its history and badge addresses name it: the
    last two components of its path (`…/labs/exp.git` → `labs`, `exp`)."""
    parts = PurePosixPath(full_name).parts
    if len(parts) < 2:
        return None
    return parts[-2], parts[-1].removesuffix(".git")


async def claim_badge_token(session: AsyncSession, *, repository_id: int, token: str) -> str:
    """Store `token` as the repository's badge token unless it has one; return the stored one.

    A conditional UPDATE, so two callers at once agree on a single token.
    """
    stmt = (
        update(Repository)
        .where(col(Repository.id) == repository_id, col(Repository.badge_token).is_(None))
        .values(badge_token=token)
    )
    await session.exec(stmt)  # type: ignore[call-overload]
    stored = select(Repository.badge_token).where(Repository.id == repository_id)
    return (await session.exec(stored)).one() or token


async def latest_branch_run(
    session: AsyncSession, *, repository_id: int, workflow_name: str, branch: str
) -> BranchRun | None:
    """The newest run of the workflow that measured `branch`, with its verdicts' outcome."""
    failed = (
        select(ContextVerdict.id)
        .where(
            ContextVerdict.run_id == Run.id,
            col(ContextVerdict.state).in_(FAILED_VERDICT_STATES),
        )
        .exists()
    )
    stmt = (
        select(Run, failed)
        .where(
            Run.repository_id == repository_id,
            Run.workflow_name == workflow_name,
            Run.branch == branch,
            col(Run.trigger).in_(HISTORY_TRIGGERS),
        )
        .order_by(col(Run.id).desc())
        .limit(1)
    )
    row = (await session.exec(stmt)).first()
    return None if row is None else BranchRun(run=row[0], verdict_failed=bool(row[1]))


async def metric_history(
    session: AsyncSession,
    *,
    repository_id: int,
    workflow_name: str,
    context: str,
    metric: str,
    branch: str,
    limit: int,
    pr_number: int | None = None,
) -> list[MetricSamples]:
    """The metric in the newest `limit` runs that measured `branch` (or with `pr_number`,
    that pull request's runs, whatever their branch), newest first.

    A run counts once all of the context's jobs are terminal and at least one successful
    job reported the metric; only successful jobs' values (of their current attempt) are
    samples. One query: the qualifying runs are a subquery.
    """
    runs = select(Run.id).where(
        Run.repository_id == repository_id,
        Run.workflow_name == workflow_name,
        *(
            (Run.branch == branch, col(Run.trigger).in_(HISTORY_TRIGGERS))
            if pr_number is None
            else (Run.pr_number == pr_number, Run.trigger == "pull_request")
        ),
    )
    reported = _reported(context, metric).where(col(Job.run_id).in_(runs))
    unfinished = func.sum(case((col(Job.state).in_(TERMINAL_JOB_STATES), 0), else_=1))
    qualifying = (
        select(Job.run_id)
        .where(Job.context == context, col(Job.run_id).in_(reported))
        .group_by(col(Job.run_id))
        .having(unfinished == 0)
        .order_by(col(Job.run_id).desc())
        .limit(limit)
    )
    stmt = (
        select(Run.id, Run.commit_sha, Run.finished_at, Run.created_at, Metric.value)
        .join(Job, col(Job.run_id) == col(Run.id))
        .join(Metric, _current_metric)
        .where(
            col(Run.id).in_(qualifying),
            Job.context == context,
            Job.state == "success",
            Metric.name == metric,
        )
        .order_by(col(Run.id).desc(), col(Job.id))
    )
    samples: dict[int, tuple[str, float, list[float]]] = {}
    for run_id, commit_sha, finished_at, created_at, value in (await session.exec(stmt)).all():
        when = finished_at if finished_at is not None else created_at
        samples.setdefault(run_id, (commit_sha, when, []))[2].append(value)
    return [
        MetricSamples(run_id=run_id, commit_sha=sha, time_s=when, values=tuple(values))
        for run_id, (sha, when, values) in samples.items()
    ]


def _reported(context: str, metric: str) -> SelectOfScalar[int]:
    """Runs in which a job of the context succeeded and reported `metric`."""
    return (
        select(Job.run_id)
        .join(Metric, _current_metric)
        .where(Job.context == context, Job.state == "success", Metric.name == metric)
    )
