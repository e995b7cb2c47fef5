"""A run's page (issue 13, item 3): its verdict and where it came from (commit and pull
request on the forge, the baseline run, the other runs of its commit), the jobs as a graph
when they have `needs`, and per job its steps, each collapsible with its own log lines,
its metrics, artifacts and reproducibility record; buttons for those allowed.

Logs open on their tail (where failures print) with "show earlier" for the rest; while a
job runs, new lines arrive as Server-Sent Events (`log_stream`) and the page's script
(`static/labci-logs.js`) puts each in its step. Everything works without script except
what is live: a reload shows the same."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.deps import Ctx, RowId
from ..auth.levels import at_least
from ..auth.policies import READ_RUN, WRITE_RUN, Access
from ..auth.principal import SESSION_USER
from ..db.models import TERMINAL_JOB_STATES, ContextVerdict, Repository, Run
from ..db.queries.history import path_tail
from ..db.queries.repositories import get_repository
from ..db.queries.runs import get_run, jobs_of_run
from ..db.queries.verdicts import verdicts_of_runs
from ..db.queries.visible import visible_runs
from ..errors import Conflict, NotFound
from ..planning.approval import approve_run
from ..results.cancel import cancel_run_by_id
from ..results.comment_render import METRIC_HEADERS, decision_footer, metric_cells
from ..results.record_view import readable_record
from ..results.rerun import rerun_of_run
from ..results.views import run_detail
from ..scheduling.waiting import why_waiting
from .job_graph import BOX_H, BOX_W, job_graph
from .runs_list import commit_url, duration, outcome, pull_request_url
from .templating import render

router = APIRouter()

# A step shown open: one that failed or runs now (the others fold to their headline).
OPEN_STATES = {"failure", "error", "timed_out", "cancelled", "running"}
OTHER_RUNS = 20


def step_duration(step: dict[str, Any]) -> str:
    """How long a step took, or has been running ("so far"); blank before it started."""
    started, finished = step.get("started_at"), step.get("finished_at")
    if not started:
        return ""
    if finished:
        return duration(finished - started)
    return duration(time.time() - started) + " so far"


def history_base(
    repository: dict[str, Any] | None, workflow: str, pr_number: int | None = None
) -> str | None:
    """Where a metric's history page is for this run's repository (with a pull request's
    runs overlaid, for one of its runs), or None when it has no owner/name (a local
    repository's is its path's last two components)."""
    if repository is None:
        return None
    if repository["provider"] == "github":
        owner, _, name = repository["full_name"].partition("/")
        found: tuple[str, str] | None = (owner, name) if name else None
    else:
        found = path_tail(repository["full_name"])
    if found is None:
        return None
    owner, name = found
    query: dict[str, Any] = {"workflow": workflow}
    if pr_number is not None:
        query["pr"] = pr_number
    return f"/repos/{quote(owner)}/{quote(name)}/metrics/history?" + urlencode(query)


def _steps(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's steps, each with its lines; lines of a step the server has no row for
    (written before its first step began) get a box of their own."""
    job = row["job"]
    lines_of: dict[int, list[dict[str, Any]]] = {}
    for line in row["logs"]:
        lines_of.setdefault(line["step"], []).append(line)
    rows = {step["index"]: step for step in row["steps"]}
    boxes = []
    for index in sorted(set(rows) | set(lines_of)):
        step = rows.get(index)
        status = step["status"] if step else "—"
        boxes.append(
            {
                "index": index,
                "name": step["name"] if step else f"step {index}",
                "status": status,
                "exit_code": step["exit_code"] if step else None,
                "took": step_duration(step) if step else "",
                "lines": lines_of.get(index, []),
                "open": status in OPEN_STATES,
            }
        )
    if boxes and not any(box["open"] for box in boxes):
        # A job that failed before a step did (setup, a lost runner), or that has not
        # started one yet: its last lines are what there is to read.
        if job["state"] not in ("success", "skipped"):
            boxes[-1]["open"] = True
    return boxes


def _job(
    row: dict[str, Any], history: str | None, waiting: str | None, can_write: bool
) -> dict[str, Any]:
    job = row["job"]
    group = job["context"].split("/", 2)[-1]  # labci/<workflow>/<group>
    metrics = [
        {
            "name": name,
            "value": f"{value:.6g}",
            "history": (history + "&" + urlencode({"job": group, "metric": name}))
            if history
            else None,
        }
        for name, value in row["metrics"].items()
    ]
    live = job["state"] not in TERMINAL_JOB_STATES
    logs = row["logs"]
    started, finished = job.get("started_at"), job.get("finished_at")
    return {
        "job": job,
        "runner": row.get("runner"),
        "needs": row.get("needs") or [],
        "metrics": metrics,
        "steps": _steps(row),
        # Where a log shown from its tail starts: the "show earlier" link's line.
        "earlier": logs[0]["seq"] if logs and logs[0]["seq"] > 0 else None,
        "artifacts": row.get("artifacts") or [],
        "record": readable_record(job.get("record")),
        "earlier_attempts": list(range(1, job["attempt"])),
        "live": live,
        "after": logs[-1]["seq"] if logs else -1,
        "waiting": waiting,
        "took": duration((finished or time.time()) - started) if started else "",
        "can_rerun": can_write and not live,
    }


def _verdict(verdict: dict[str, Any]) -> dict[str, Any]:
    found = verdict.get("baseline")
    if found:
        where = f"{found.get('source', 'baseline')} {str(found.get('commit') or '')[:7]}"
        same = "same hardware" if found.get("same_hardware") else "OTHER hardware"
        baseline = (
            f"Baseline: {where} (run #{found.get('run_id')}) · {same} {found.get('hardware') or ''}"
        )
    else:
        baseline = f"No baseline: {verdict.get('no_baseline') or '—'}"
    rows = verdict.get("metrics") or []
    return {
        "context": verdict["context"],
        "state": verdict["state"],
        "description": verdict["description"],
        "baseline": baseline.strip(),
        "baseline_run": int(found["run_id"]) if found and found.get("run_id") else None,
        "rows": [(row.get("verdict") or "", metric_cells(row)) for row in rows],
        "footer": decision_footer(verdict) if rows else None,
    }


def _other_run(run: Run, verdicts: list[ContextVerdict]) -> dict[str, Any]:
    return {"id": run.id, "workflow": run.workflow_name, "trigger": run.trigger,
            "outcome": outcome(run, verdicts)}  # fmt: skip


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    run_id: RowId,
    request: Request,
    sc: Ctx,
    access: Annotated[Access, Depends(READ_RUN)],
    lines: Annotated[Literal["none"] | None, Query()] = None,
    job: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    """The run's page. The page's script refreshes its parts with `?lines=none` (no log
    line is read: a big run's refresh costs a few small queries) and a job that ended with
    `?job=J` (only that job's lines)."""
    only = set() if lines == "none" else ({job} if job is not None else None)
    detail = await run_detail(sc, run_id, log_tail=True, log_jobs=only)
    async with sc.sessions() as session:
        run = await get_run(session, run_id)
        repo = await get_repository(session, run.repository_id) if run else None
        if run is None or repo is None:
            raise NotFound(f"run {run_id} does not exist")
        same_commit = [
            r
            for r in await visible_runs(
                session, repository_ids={repo.id or 0}, limit=OTHER_RUNS, commit_sha=run.commit_sha
            )
            if r.id != run.id
        ]
        verdicts = await verdicts_of_runs(session, [run_id] + [r.id or 0 for r in same_commit])
        waiting = await why_waiting(
            session, run, await jobs_of_run(session, run_id), settings=sc.settings
        )
    by_run: dict[int, list[ContextVerdict]] = {}
    for verdict in verdicts:
        by_run.setdefault(verdict.run_id, []).append(verdict)
    can_write = at_least(access.level, "write")
    history = history_base(detail["repository"], run.workflow_name, run.pr_number)
    # The newest status of each context, as the forge shows it: an earlier "pending ·
    # queued" beside the final verdict would only mislead.
    statuses: dict[str, dict[str, Any]] = {}
    for message in detail["outbox"]:  # oldest first
        if message["kind"] == "status":
            statuses[message["context"]] = message
    shown_verdicts = [_verdict(v) for v in detail["verdicts"]]
    jobs = [_job(row, history, waiting.get(row["job"]["id"]), can_write) for row in detail["jobs"]]
    return render(
        request,
        "run.html",
        access.principal,
        title=f"Run #{run_id} {run.workflow_name}",
        run=run,
        repo=repo,
        event=detail["event"] or {},
        outcome=outcome(run, by_run.get(run_id, [])),
        commit_url=commit_url(repo, run.commit_sha, sc.settings.github_web_url),
        pr_url=pull_request_url(repo, run.pr_number, sc.settings.github_web_url)
        if run.pr_number
        else None,
        took=duration((run.finished_at or time.time()) - run.created_at),
        baselines=sorted({v["baseline_run"] for v in shown_verdicts if v["baseline_run"]}),
        others=[_other_run(r, by_run.get(r.id or 0, [])) for r in same_commit],
        statuses=list(statuses.values()),
        verdicts=shown_verdicts,
        headers=METRIC_HEADERS,
        graph=job_graph(detail["jobs"]),
        box=(BOX_W, BOX_H),
        jobs=jobs,
        can_write=can_write,
        signed_in="session" in request.scope and request.session.get(SESSION_USER) is not None,
        repository_label=_repository_label(repo),
    )


def _repository_label(repo: Repository) -> str:
    if repo.provider == "git":
        found = path_tail(repo.full_name)
        return "/".join(found) if found else repo.full_name
    return repo.full_name


@router.post("/runs/{run_id}/cancel")
async def cancel_button(
    run_id: RowId, sc: Ctx, access: Annotated[Access, Depends(WRITE_RUN)]
) -> RedirectResponse:
    """The run page's cancel button (a form with the session's CSRF token)."""
    await cancel_run_by_id(sc, run_id, reason=f"stopped by {access.principal.name}")
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/approve")
async def approve_button(
    run_id: RowId, sc: Ctx, access: Annotated[Access, Depends(WRITE_RUN)]
) -> RedirectResponse:
    """The run page's approve button (a form with the session's CSRF token)."""
    await approve_run(sc, run_id, by=access.principal.name, via="page")
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/rerun")
async def rerun_button(
    run_id: RowId,
    sc: Ctx,
    access: Annotated[Access, Depends(WRITE_RUN)],
    context: Annotated[str | None, Form(max_length=300)] = None,
) -> RedirectResponse:
    """The run page's re-run buttons: one job's check (`context`: the job and its repeats,
    which are judged together) or, without it, every check of the run. Checks still going
    are left alone; when that leaves nothing to start, the answer is 409 with the reason."""
    started = await rerun_of_run(
        sc, run_id, contexts=[context] if context else None, who=access.principal.name
    )
    if not started:
        raise Conflict(
            f"nothing to re-run in run {run_id}: "
            + (f"{context} is still going" if context else "its checks are still going")
        )
    return RedirectResponse(f"/runs/{run_id}", status_code=303)
