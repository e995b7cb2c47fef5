"""README badges, trend charts and a metric's history over HTTP.

    GET /badges/{owner}/{repo}/{workflow}.svg|.json                  passing/failing/running/unknown
    GET /badges/{owner}/{repo}/{workflow}/{job}/{metric}.svg|.json   the latest value
    GET /badges/{owner}/{repo}/{workflow}/{job}/{metric}/trend.svg   the last runs' values
    GET /api/v1/repos/{owner}/{repo}/metrics?workflow=&job=&metric=  the same values as JSON

All of them read runs that measured `?branch=` (by default the repository's default branch)
itself, never pull requests.
On the repository's default branch the trend marks, and the JSON lists, the change points
between the runs shown (`results/branch_history.py`); the JSON also lists the bisections
that looked for the commits behind them (`bisection/`).
A README embeds a badge before the first run, so an unknown workflow or metric is a 200
"unknown" / "no data" badge; only an unknown repository (or a private one without its
`?token=`) is a 404. Badges are revalidated on every view (GitHub's image proxy caches
anything else) and answer 304 to a matching `If-None-Match`. Text from the URL reaches a
badge only through the renderers in `badges.py`, which escape it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ..api.deps import Ctx, clamp
from ..api.schemas import (
    BisectionRun,
    MetricBisection,
    MetricChangePoint,
    MetricEffect,
    MetricHistory,
    MetricPoint,
)
from ..auth.policies import BADGE, Access
from ..context import ServerContext
from ..db.models import Bisection, Repository
from ..db.queries.bisections import bisections_of_metric
from ..db.queries.history import (
    BranchRun,
    MetricSamples,
    latest_branch_run,
    metric_history,
)
from ..errors import BadRequest, NotFound
from ..planning.planner import job_context
from ..results.branch_history import MetricTrend, SeriesKey, default_branch_of, metric_trend
from ..results.changepoints import ChangePoint
from .badge_tokens import NOT_FOUND
from .badges import (
    STATUS_COLORS,
    TrendChange,
    badge_json,
    etag,
    format_metric,
    render_badge,
    trend_svg,
)

router = APIRouter()

SVG_MEDIA_TYPE: Final = "image/svg+xml; charset=utf-8"
JSON_MEDIA_TYPE: Final = "application/json"
TREND_RUNS, MAX_TREND_RUNS = 30, 200
HISTORY_RUNS, MAX_HISTORY_RUNS = 50, 500
METRIC_COLOR, NO_DATA_COLOR = "blue", "lightgrey"
NO_DATA: Final = "no data"

BADGE_HEADERS: Final = {
    # camo (GitHub's image proxy) keeps an image as long as it is allowed to: revalidate.
    "Cache-Control": "no-cache, max-age=0",
    "X-Content-Type-Options": "nosniff",
    # Opened directly, an SVG is a document: it may not load or run anything.
    "Content-Security-Policy": "default-src 'none'",
}


@dataclass(frozen=True)
class MetricSeries:
    workflow: str
    job: str  # the context's group: the job id, or `sweep (0.1)` for a matrix instance
    metric: str
    branch: str  # "" until `on_branch` gives it the repository's default

    @property
    def context(self) -> str:
        return job_context(self.workflow, self.job)

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(workflow_name=self.workflow, context=self.context, metric=self.metric)


def repo_ref(
    owner: Annotated[str, Path(max_length=200)],
    repo: Annotated[str, Path(max_length=200)],
    access: Annotated[Access, Depends(BADGE)],
    token: Annotated[
        str | None, Query(max_length=200, description="badge token of a private repository")
    ] = None,
) -> Repository:
    if access.repository is None:  # BADGE answers 404 before this
        raise NotFound(NOT_FOUND)
    return access.repository


Repo = Annotated[Repository, Depends(repo_ref)]
BranchParam = Annotated[
    str | None,
    Query(max_length=255, description="branch measured; the repository's default branch if unset"),
]


def badge_series(workflow: str, job: str, metric: str, branch: BranchParam = None) -> MetricSeries:
    return MetricSeries(workflow, job, metric, branch or "")


def on_branch(series: MetricSeries, ref: Repository) -> MetricSeries:
    """`series` on the branch asked for, else on the repository's default branch (not a
    dependency of its own: every route has exactly one policy, `repo_ref`'s)."""
    return series if series.branch else replace(series, branch=default_branch_of(ref))


Series = Annotated[MetricSeries, Depends(badge_series)]


@router.get("/badges/{owner}/{repo}/{workflow}.svg")
async def status_svg(
    request: Request, sc: Ctx, ref: Repo, workflow: str, branch: BranchParam = None
) -> Response:
    status = await workflow_status(sc, ref, workflow, branch or default_branch_of(ref))
    svg = render_badge(workflow, status, STATUS_COLORS[status])
    return badge_response(request, svg, SVG_MEDIA_TYPE)


@router.get("/badges/{owner}/{repo}/{workflow}.json")
async def status_json(
    request: Request, sc: Ctx, ref: Repo, workflow: str, branch: BranchParam = None
) -> Response:
    status = await workflow_status(sc, ref, workflow, branch or default_branch_of(ref))
    body = badge_json(workflow, status, STATUS_COLORS[status])
    return badge_response(request, _json_text(body), JSON_MEDIA_TYPE)


@router.get("/badges/{owner}/{repo}/{workflow}/{job}/{metric}.svg")
async def metric_svg(request: Request, sc: Ctx, ref: Repo, series: Series) -> Response:
    series = on_branch(series, ref)
    message, color = metric_message(await series_samples(sc, ref, series, limit=1))
    svg = render_badge(series.metric, message, color)
    return badge_response(request, svg, SVG_MEDIA_TYPE)


@router.get("/badges/{owner}/{repo}/{workflow}/{job}/{metric}.json")
async def metric_json(request: Request, sc: Ctx, ref: Repo, series: Series) -> Response:
    series = on_branch(series, ref)
    message, color = metric_message(await series_samples(sc, ref, series, limit=1))
    body = badge_json(series.metric, message, color)
    return badge_response(request, _json_text(body), JSON_MEDIA_TYPE)


@router.get("/badges/{owner}/{repo}/{workflow}/{job}/{metric}/trend.svg")
async def metric_trend_svg(
    request: Request,
    sc: Ctx,
    ref: Repo,
    series: Series,
    limit: Annotated[int, Query(description=f"runs shown, at most {MAX_TREND_RUNS}")] = (
        TREND_RUNS
    ),
) -> Response:
    series = on_branch(series, ref)
    trend = await series_trend(sc, ref, series, limit=clamp(limit, MAX_TREND_RUNS))
    oldest_first = trend.samples[::-1]
    points = [_trend_point(s) for s in oldest_first]
    position = {s.run_id: i for i, s in enumerate(oldest_first)}
    changes = [
        TrendChange(position[c.before_run_id], position[c.run_id], _change_label(series, c))
        for c in trend.change_points or ()
    ]
    svg = trend_svg(points, title=f"{series.metric} on {series.branch}", changes=changes)
    return badge_response(request, svg, SVG_MEDIA_TYPE)


@router.get("/api/v1/repos/{owner}/{repo}/metrics", response_model=MetricHistory)
async def metric_history_json(
    sc: Ctx,
    ref: Repo,
    owner: str,
    repo: str,
    workflow: str | None = None,
    job: str | None = None,
    metric: str | None = None,
    branch: BranchParam = None,
    limit: Annotated[int, Query(description=f"runs, at most {MAX_HISTORY_RUNS}")] = (HISTORY_RUNS),
    pr: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="also that pull request's runs (to overlay)"),
    ] = None,
) -> MetricHistory:
    series = _required_series(
        workflow=workflow, job=job, metric=metric, branch=branch or default_branch_of(ref)
    )
    overlay = (
        await series_samples(sc, ref, series, limit=clamp(limit, MAX_HISTORY_RUNS), pr_number=pr)
        if pr is not None
        else None
    )
    trend = await series_trend(sc, ref, series, limit=clamp(limit, MAX_HISTORY_RUNS))
    changes = trend.change_points
    bisections = None if changes is None else await series_bisections(sc, ref, series)
    return MetricHistory(
        repository=f"{owner}/{repo}",
        workflow=series.workflow,
        job=series.job,
        metric=series.metric,
        branch=series.branch,
        default_branch=default_branch_of(ref),
        points=[_point(s) for s in trend.samples],
        change_points=None if changes is None else [_change_point(c) for c in reversed(changes)],
        bisections=bisections,
        pull_request=pr,
        pull_request_points=None if overlay is None else [_point(s) for s in overlay],
    )


def _point(s: MetricSamples) -> MetricPoint:
    return MetricPoint(
        run_id=s.run_id, commit=s.commit_sha, time=s.time_s, value=s.mean, std=s.std, n=s.n
    )


async def workflow_status(sc: ServerContext, repo: Repository, workflow: str, branch: str) -> str:
    async with sc.sessions() as session:
        latest = await latest_branch_run(
            session, repository_id=repo.id or 0, workflow_name=workflow, branch=branch
        )
    return status_of(latest)


def status_of(latest: BranchRun | None) -> str:
    """A branch's badge word: a gated metric regression fails the badge although the run's
    jobs succeeded, because the verdict is what the commit status shows."""
    if latest is None:
        return "unknown"
    if latest.run.state != "finished":
        return "running"
    if latest.run.conclusion != "success" or latest.verdict_failed:
        return "failing"
    return "passing"


async def series_samples(
    sc: ServerContext,
    repo: Repository,
    series: MetricSeries,
    *,
    limit: int,
    pr_number: int | None = None,
) -> list[MetricSamples]:
    async with sc.sessions() as session:
        return await metric_history(
            session,
            repository_id=repo.id or 0,
            workflow_name=series.workflow,
            context=series.context,
            metric=series.metric,
            branch=series.branch,
            limit=limit,
            pr_number=pr_number,
        )


async def series_trend(
    sc: ServerContext, repo: Repository, series: MetricSeries, *, limit: int
) -> MetricTrend:
    async with sc.sessions() as session:
        return await metric_trend(
            session, repository=repo, series=series.key, branch=series.branch, limit=limit
        )


async def series_bisections(
    sc: ServerContext, repo: Repository, series: MetricSeries
) -> list[MetricBisection]:
    async with sc.sessions() as session:
        found = await bisections_of_metric(
            session,
            repository_id=repo.id or 0,
            context=series.context,
            metric=series.metric,
            hidden_states=HIDDEN_BISECTIONS,
        )
    return [_bisection(b, sc.run_url) for b in found]


def _change_point(change: ChangePoint) -> MetricChangePoint:
    return MetricChangePoint(
        commit=change.commit_sha,
        run_id=change.run_id,
        time=change.time_s,
        before_commit=change.before_commit_sha,
        before_run_id=change.before_run_id,
        mean_before=change.mean_before,
        mean_after=change.mean_after,
        change=change.relative_change,
        p_value=change.p_value,
        runs_before=change.runs_before,
        runs_after=change.runs_after,
    )


# `adjacent`: the change point's two commits are neighbours, nothing was searched.
HIDDEN_BISECTIONS = ("adjacent",)


def _bisection(b: Bisection, run_url: Callable[[int | None], str]) -> MetricBisection:
    effect = b.effect or {}
    proof = []
    if b.state == "found":
        proof = [
            _proof(b.parent_sha, b.parent_run_id, effect.get("base"), "old", run_url),
            _proof(b.result_sha, b.result_run_id, effect.get("head"), "new", run_url),
        ]
    steps = [
        BisectionRun(
            commit=s["sha"],
            run_id=s.get("run_id"),
            url=run_url(s["run_id"]) if s.get("run_id") is not None else None,
            value=s.get("mean"),
            n=int(s.get("n") or 0),
            level=s["level"],
            reason=s.get("reason"),
        )
        for s in b.steps
    ]
    return MetricBisection(
        id=b.id or 0,
        state="searching" if b.state == "listing" else b.state,
        note=b.note,
        before_commit=b.good_sha,
        after_commit=b.bad_sha,
        level_before=b.level_before,
        level_after=b.level_after,
        commits_between=None if b.candidates is None else len(b.candidates) - 1,
        commit=b.result_sha,
        parent_commit=b.parent_sha,
        effect=MetricEffect(**{k: effect.get(k) for k in MetricEffect.model_fields})
        if effect
        else None,
        runs=proof,
        steps=steps,
        runs_started=sum(1 for s in b.steps if s.get("bisection_run")),
    )


def _proof(
    sha: str | None,
    run_id: int | None,
    side: dict[str, Any] | None,
    level: str,
    run_url: Callable[[int | None], str],
) -> BisectionRun:
    return BisectionRun(
        commit=sha or "",
        run_id=run_id,
        url=run_url(run_id) if run_id is not None else None,
        value=(side or {}).get("mean"),
        n=int((side or {}).get("n") or 0),
        level=level,
        reason=None,
    )


def _change_label(series: MetricSeries, change: ChangePoint) -> str:
    """`acc 0.9012 → 0.9311 (+3.3%) between 0f0e0d0 and 1a2b3c4, p = 2e-09`"""
    relative = "" if change.relative_change is None else f" ({change.relative_change:+.1%})"
    return (
        f"{series.metric} {format_metric(change.mean_before)} → "
        f"{format_metric(change.mean_after)}{relative} between "
        f"{change.before_commit_sha[:7]} and {change.commit_sha[:7]}, p = {change.p_value:.1g}"
    )


def metric_message(samples: list[MetricSamples]) -> tuple[str, str]:
    """Message and colour of a metric badge from the newest run's samples."""
    if not samples:
        return NO_DATA, NO_DATA_COLOR
    latest = samples[0]
    if latest.n > 1:
        return format_metric(latest.mean, latest.std, latest.n), METRIC_COLOR
    return format_metric(latest.mean), METRIC_COLOR


def _trend_point(samples: MetricSamples) -> tuple[float, float] | tuple[float, float, float]:
    std = samples.std
    if std is None:
        return (samples.time_s, samples.mean)
    return (samples.time_s, samples.mean, std)


def _required_series(
    *, workflow: str | None, job: str | None, metric: str | None, branch: str
) -> MetricSeries:
    if not (workflow and job and metric):
        given = {"workflow": workflow, "job": job, "metric": metric}
        missing = [name for name, value in given.items() if not value]
        raise BadRequest(
            f"missing query parameter(s): {', '.join(missing)}; "
            "e.g. ?workflow=train&job=mnist&metric=accuracy"
        )
    return MetricSeries(workflow, job, metric, branch)


def _json_text(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def badge_response(request: Request, body: str, media_type: str) -> Response:
    """The badge with its validators; 304 without a body when the client has it already."""
    tag = etag(body)
    headers = {**BADGE_HEADERS, "ETag": tag}
    if _etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _etag_matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match: "*" or any listed tag, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    listed = [part.strip().removeprefix("W/") for part in if_none_match.split(",")]
    return "*" in listed or tag in listed
