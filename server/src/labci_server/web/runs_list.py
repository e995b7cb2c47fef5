"""The runs list (`/` and `/runs`): each run's overall verdict, workflow, pull request or
branch with its headline, commit, who triggered it, when and for how long; filters and
pages; the table refreshes itself (htmx) while the page is open, and works without script.

A run's overall verdict is what a reader needs first: a run whose jobs all succeeded but
whose verdict found a regression looks failed, as its commit status does."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from ..api.deps import Ctx
from ..auth.permissions import readable_repository_ids
from ..auth.policies import LISTING, Access
from ..db.models import ContextVerdict, Event, Repository, Run
from ..db.queries.run_listing import (
    FAILED_STATES,
    RUN_STATES,
    RunFilters,
    listed_runs,
    workflows_and_branches,
)
from ..db.queries.verdicts import verdicts_of_runs
from ..errors import BadRequest
from .templating import render

router = APIRouter()

PAGE_SIZE = 50
MAX_PAGE = 10_000
REFRESH_S = 5


@dataclass(frozen=True)
class Outcome:
    """A run at a glance: `css` is one of success, failure, running, pending."""

    css: str
    label: str
    note: str


def outcome(run: Run, verdicts: list[ContextVerdict]) -> Outcome:
    failed = [v for v in verdicts if v.state in FAILED_STATES]
    if run.approval == "awaiting":
        return Outcome("pending", "awaiting approval", "a writer must approve this fork's run")
    if run.state == "pending":
        return Outcome("pending", "queued", "")
    if run.state == "running":
        return Outcome("running", "running", failed[0].description if failed else "")
    if run.conclusion not in (None, "success"):
        note = failed[0].description if failed else run.error or ""
        return Outcome("failure", run.conclusion or "failure", note)
    if failed:
        return Outcome("failure", "failure", "; ".join(v.description for v in failed))
    pending = [v for v in verdicts if v.state == "pending"]
    note = pending[0].description if pending else (verdicts[0].description if verdicts else "")
    return Outcome("success", "success", note)


def repository_label(repo: Repository) -> str:
    """A local repository's name is its path: shown by its last part (the path on hover)."""
    if repo.provider == "git":
        path = PurePath(repo.full_name)
        return path.name.removesuffix(".git") or repo.full_name
    return repo.full_name


def commit_url(repo: Repository, sha: str, web_url: str) -> str | None:
    if repo.provider == "github":
        return f"{web_url.rstrip('/')}/{repo.full_name}/commit/{sha}"
    return None


def pull_request_url(repo: Repository, number: int, web_url: str) -> str | None:
    if repo.provider == "github":
        return f"{web_url.rstrip('/')}/{repo.full_name}/pull/{number}"
    return None


def ago(ts: float, now: float) -> str:
    seconds = max(0, int(now - ts))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def row(
    run: Run, repo: Repository, event: Event | None, verdicts: list[ContextVerdict], web_url: str
) -> dict[str, Any]:
    now = time.time()
    ended = run.finished_at if run.state == "finished" and run.finished_at else None
    return {
        "id": run.id,
        "outcome": outcome(run, verdicts),
        "repository": repository_label(repo),
        "repository_title": repo.full_name,
        "repository_id": repo.id,
        "workflow": run.workflow_name,
        "trigger": run.trigger,
        "branch": run.branch,
        "pr_number": run.pr_number,
        "pr_url": pull_request_url(repo, run.pr_number, web_url) if run.pr_number else None,
        "title": event.title if event else None,
        "sender": event.sender if event else None,
        "commit": run.commit_sha,
        "commit_url": commit_url(repo, run.commit_sha, web_url),
        "created_at": run.created_at,
        "created_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.created_at)),
        "ago": ago(run.created_at, now),
        "took": duration((ended or now) - run.created_at),
        "still_running": ended is None,
    }


def parse_filters(
    repository: str | None,
    branch: str | None,
    pr: str | None,
    state: str | None,
    workflow: str | None,
) -> RunFilters:
    """The query's filters; a malformed one is a 400 that names it."""

    def number(name: str, value: str | None) -> int | None:
        if not value:
            return None
        if not value.isdigit() or len(value) > 9:
            raise BadRequest(f"{name} must be a number, not {value[:40]!r}")
        return int(value)

    if state and state not in RUN_STATES:
        raise BadRequest(f"state must be one of {', '.join(RUN_STATES)}, not {state[:40]!r}")
    return RunFilters(
        repository_id=number("repository", repository),
        branch=branch or None,
        pr_number=number("pr", pr),
        state=state or None,
        workflow=workflow or None,
    )


async def runs_page(
    request: Request,
    sc: Ctx,
    access: Access,
    *,
    filters: RunFilters,
    page: int,
) -> HTMLResponse:
    visible = await readable_repository_ids(sc, access.principal)
    async with sc.sessions() as session:
        found = await listed_runs(
            session,
            repository_ids=visible,
            filters=filters,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE + 1,
        )
        shown = found[:PAGE_SIZE]
        verdicts = await verdicts_of_runs(session, [run.id or 0 for run, _, _ in shown])
        workflows, branches = await workflows_and_branches(session, repository_ids=visible)
        repositories = {repo.id: repo for _, repo, _ in shown}
    by_run: dict[int, list[ContextVerdict]] = {}
    for verdict in verdicts:
        by_run.setdefault(verdict.run_id, []).append(verdict)
    web_url = sc.settings.github_web_url
    rows = [
        row(run, repo, event, by_run.get(run.id or 0, []), web_url) for run, repo, event in shown
    ]
    query = {
        "repository": filters.repository_id or "",
        "branch": filters.branch or "",
        "pr": filters.pr_number or "",
        "state": filters.state or "",
        "workflow": filters.workflow or "",
    }
    # The table alone for htmx's refresh (it asks with HX-Request); the page otherwise.
    fragment = request.headers.get("hx-request") == "true"
    return render(
        request,
        "runs_table.html" if fragment else "runs.html",
        access.principal,
        title="Runs",
        rows=rows,
        query=query,
        page=page,
        has_next=len(found) > PAGE_SIZE,
        states=RUN_STATES,
        workflows=workflows,
        branches=branches,
        repositories=sorted(repositories.values(), key=lambda r: r.full_name),
        refresh_s=REFRESH_S,
        filtered=any(query.values()),
    )


Text = Annotated[str | None, Query(max_length=200)]


@router.get("/", response_class=HTMLResponse)
@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(LISTING)],
    repository: Text = None,
    branch: Text = None,
    pr: Text = None,
    state: Text = None,
    workflow: Text = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    """The newest runs of the repositories the caller may read."""
    filters = parse_filters(repository, branch, pr, state, workflow)
    return await runs_page(request, sc, access, filters=filters, page=page)
