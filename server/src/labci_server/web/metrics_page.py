"""A metric's history along a branch (issue 13, item 4, first part): an interactive chart
(uPlot, vendored) of each run's mean with its spread where there are repeats, the change
points marked, and on hover the commit and run (a click opens the run); with `?pr=N` (a
pull request's run page links so) that pull request's runs overlaid; below it the same
values as tables, which is what a reader without script gets.

The page embeds the history API's own answer (`/api/v1/repos/{owner}/{repo}/metrics`) as
a JSON data block the chart reads: one source of numbers for the API, the badge and here."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from ..api.deps import Ctx
from ..api.schemas import MetricPoint
from ..auth.policies import BADGE, BADGE_NOT_FOUND, Access
from ..errors import NotFound
from .badge_routes import (
    HISTORY_RUNS,
    MAX_HISTORY_RUNS,
    BranchParam,
    metric_history_json,
)
from .templating import render

router = APIRouter()

Name = Annotated[str | None, Query(max_length=200)]


@router.get("/repos/{owner}/{repo}/metrics/history", response_class=HTMLResponse)
async def metric_history_page(
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(BADGE)],
    owner: str,
    repo: str,
    workflow: Name = None,
    job: Name = None,
    metric: Name = None,
    branch: BranchParam = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_RUNS)] = HISTORY_RUNS,
    pr: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    if access.repository is None:  # BADGE answers 404 before this
        raise NotFound(BADGE_NOT_FOUND)
    history = await metric_history_json(
        sc,
        access.repository,
        owner,
        repo,
        workflow=workflow,
        job=job,
        metric=metric,
        branch=branch,
        limit=limit,
        pr=pr,
    )
    points = [_shown(p) for p in history.points]
    overlay = [_shown(p) for p in history.pull_request_points or []]
    return render(
        request,
        "metric_history.html",
        access.principal,
        title=f"{history.metric} · {owner}/{repo}",
        history=history,
        # A JSON data block, never run: "<" escaped so no value can close the element.
        history_json=history.model_dump_json().replace("<", "\\u003c"),
        points=points,
        overlay=overlay,
        changes=history.change_points or [],
    )


def _shown(point: MetricPoint) -> dict[str, Any]:
    return {
        **point.model_dump(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(point.time)),
    }
