"""Plain HTML pages: recent runs, and one run with jobs, statuses, steps, logs and metrics.

Everything shown that a pull request could control (branch names, logs, messages) goes
through `html.escape`.
"""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.deps import Ctx, RowId
from ..auth.levels import at_least
from ..auth.policies import READ_RUN, WRITE_RUN, Access
from ..auth.principal import SESSION_USER
from ..auth.sessions import csrf_token
from ..db.models import TERMINAL_JOB_STATES
from ..planning.approval import approve_run
from ..results.cancel import cancel_run_by_id
from ..results.comment_render import decision_footer, metric_cells
from ..results.views import run_detail
from .log_stream import earlier_link, line_markup
from .runs_list import duration
from .static_files import static_url

router = APIRouter()

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
.success{color:#1a7f37}.failure,.error,.timed_out,.cancelled,.blocked{color:#cf222e}.pending,.queued,.running,.waiting{color:#9a6700}.skipped{color:#57606a}
pre{background:#f6f8fa;padding:.5rem;overflow-x:auto;max-height:30rem}.stderr{color:#cf222e}
pre.log .line{display:block}pre.log .n{display:inline-block;min-width:3.5em;margin-right:1em;color:#8c959f;text-align:right;text-decoration:none;user-select:none}
"""


def page(title: str, body: str) -> HTMLResponse:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        "<link rel='icon' href='data:,'>"
        "<meta name='htmx-config' content='{\"allowEval\": false, \"includeIndicatorStyles\": false}'>"
        f"<script src='{static_url('vendor/htmx.min.js')}' defer></script>"
        f"<script src='{static_url('vendor/htmx-ext-sse.min.js')}' defer></script>"
        f"<script type='module' src='{static_url('labci-logs.js')}'></script>"
        f"<style>{STYLE}</style></head><body><p><a href='/'>labci</a> · <a href='/runs'>runs</a> · "
        f"<a href='/account'>account</a> · <a href='/login'>sign in</a></p>{body}</body></html>"
    )
    return HTMLResponse(html)


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "—"


def step_duration(step: dict[str, Any]) -> str:
    """How long a step took, or has been running ("so far"); blank before it started."""
    started, finished = step.get("started_at"), step.get("finished_at")
    if not started:
        return ""
    if finished:
        return duration(finished - started)
    return duration(time.time() - started) + " so far"


def state(value: str | None) -> str:
    text = escape(value or "—")
    return f"<span class='{text}'>{text}</span>"


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(
    run_id: RowId, request: Request, sc: Ctx, access: Annotated[Access, Depends(READ_RUN)]
) -> HTMLResponse:
    detail = await run_detail(sc, run_id, log_tail=True)
    run = detail["run"]
    head = _approval_banner(request, run) + (
        f"<h1>Run #{run['id']}: {escape(run['workflow_name'])}</h1>"
        f"<p>{escape(detail['repository']['full_name'] if detail['repository'] else '')} · "
        f"{escape(run['trigger'])} · branch {escape(run['branch'])} · commit <code>{escape(run['commit_sha'])}</code>"
        f" · {state(run['state'])} {state(run['conclusion'])}</p>"
    )
    if run["state"] != "finished" and at_least(access.level, "write"):
        # Offered to writers only (the POST is authorised all the same).
        head += (
            f"<form method='post' action='/runs/{run['id']}/cancel'>"
            f"<input type='hidden' name='csrf_token' value='{escape(csrf_token(request))}'>"
            "<button type='submit'>Cancel run</button></form>"
        )
    if run["pr_number"]:
        head += (
            f"<p><a href='/runs/{run['id']}/pull-request'>pull request #{run['pr_number']}"
            " and labci's comment on it</a></p>"
        )
    if run["error"]:
        head += f"<pre>{escape(run['error'])}</pre>"
    # The newest status of each context, as the forge shows it: an earlier "pending ·
    # queued" beside the final verdict would only mislead.
    latest: dict[str, dict[str, Any]] = {}
    for message in detail["outbox"]:  # oldest first
        if message["kind"] == "status":
            latest[message["context"]] = message
    statuses = "".join(
        f"<tr><td>{escape(m['context'])}</td><td>{state(m['state'])}</td><td>{escape(m['description'])}</td>"
        f"<td>{escape(m['status'])}</td></tr>"
        for m in latest.values()
    )
    head += f"<h2>Commit statuses</h2><table><tr><th>context</th><th>state</th><th>description</th><th>delivery</th></tr>{statuses}</table>"
    verdicts = "".join(_verdict_section(v, run["id"]) for v in detail["verdicts"])
    verdicts += (
        f"<form class='compare' method='get' action='/runs/{run['id']}/compare'>"
        "<label>Compare with run <input name='with' inputmode='numeric' size='8' required>"
        "</label> <button type='submit'>Compare</button></form>"
    )
    history = _history_base(detail["repository"], run["workflow_name"])
    jobs = "".join(_job_section(j, history) for j in detail["jobs"])
    return page(f"run {run_id}", head + verdicts + jobs)


def _history_base(repository: dict[str, Any] | None, workflow: str) -> str | None:
    """Where a metric's history page is for this run's repository (by owner/name: a local
    repository's last two path components), or None when it has no such name."""
    if repository is None:
        return None
    parts = PurePosixPath(repository["full_name"]).parts
    if len(parts) < 2:
        return None
    owner, name = parts[-2], parts[-1].removesuffix(".git")
    return f"/repos/{quote(owner)}/{quote(name)}/metrics/history?" + urlencode(
        {"workflow": workflow}
    )


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


def _approval_banner(request: Request, run: dict[str, Any]) -> str:
    """What a fork's run waits for, and the button that lets it go (for writers: the
    POST is authorised, the button only offered)."""
    if run.get("approval") == "approved":
        return f"<p class='success'>Approved by {escape(run.get('approved_by') or '?')}.</p>"
    if run.get("approval") != "awaiting":
        return ""
    signed_in = "session" in request.scope and request.session.get(SESSION_USER) is not None
    form = (
        f"<form method='post' action='/runs/{run['id']}/approve'>"
        f"<input type='hidden' name='csrf_token' value='{escape(csrf_token(request))}'>"
        "<button type='submit'>Approve and run</button></form>"
        if signed_in
        else f"<p><a href='/login?next=/runs/{run['id']}'>Sign in</a> to approve.</p>"
    )
    return (
        "<div class='pending' id='approval'><h2>Awaiting approval from a maintainer</h2>"
        "<p>This pull request comes from a fork: nothing runs until someone with write "
        f"permission approves commit <code>{escape(run['commit_sha'][:10])}</code> — "
        f"here, with <code>labci approve {run['id']}</code>, or by commenting "
        "<code>/labci approve</code> on the pull request. A new push needs a new approval. "
        "Its jobs run only on docker runners, without secrets.</p>"
        f"{form}</div>"
    )


METRIC_HEADERS = (
    "metric",
    "base",
    "head",
    "Δ [interval]",
    "Δ %",
    "verdict",
    "p (adjusted)",
    "decided by",
)


def _verdict_section(verdict: dict[str, Any], run_id: int) -> str:
    """A context's verdict: the metric table against its baseline, as the PR comment has it."""
    found = verdict.get("baseline")
    if found:
        where = f"{found.get('source', 'baseline')} {str(found.get('commit') or '')[:7]}"
        hardware = found.get("hardware") or ""
        same = "same hardware" if found.get("same_hardware") else "OTHER hardware"
        baseline = f"Baseline: {where} (run #{found.get('run_id')}) · {same} {hardware}"
    else:
        baseline = f"No baseline: {verdict.get('no_baseline') or '—'}"
    header = "".join(f"<th>{h}</th>" for h in METRIC_HEADERS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in metric_cells(row)) + "</tr>"
        for row in verdict.get("metrics") or []
    )
    footer = decision_footer(verdict)
    return (
        f"<h2>{escape(verdict['context'])} {state(verdict['state'])}</h2>"
        f"<p>{escape(verdict['description'])}</p><p>{escape(baseline)}"
        + (
            f" · <a href='/runs/{int(found['run_id'])}/compare?with={run_id}'>"
            "compare with the baseline run</a>"
            if found and found.get("run_id")
            else ""
        )
        + "</p>"
        + (f"<table><tr>{header}</tr>{rows}</table>" if rows else "")
        + (f"<p>{escape(footer)}</p>" if rows and footer else "")
    )


def _job_section(row: dict[str, Any], history: str | None = None) -> str:
    job = row["job"]
    group = job["context"].split("/", 2)[-1]  # labci/<workflow>/<group>

    def name_of(metric: str) -> str:
        if history is None:
            return escape(metric)
        url = history + "&" + urlencode({"job": group, "metric": metric})
        return f"<a href='{escape(url)}' title='its history'>{escape(metric)}</a>"

    metrics = "".join(
        f"<tr><td>{name_of(k)}</td><td>{v:.6g}</td></tr>" for k, v in row["metrics"].items()
    )
    steps = "".join(
        f"<tr><td>{s['index']}</td><td>{escape(s['name'])}</td><td>{state(s['status'])}</td>"
        f"<td>{'' if s['exit_code'] is None else s['exit_code']}</td><td>{step_duration(s)}</td></tr>"
        for s in row["steps"]
    )
    logs = "".join(
        line_markup(job["id"], line["seq"], line["stream"], line["text"]) for line in row["logs"]
    )
    if row["logs"] and row["logs"][0]["seq"] > 0:  # the tail of a longer log
        logs = earlier_link(job["id"], row["logs"][0]["seq"]) + logs
    log_box = f"<pre class='log'>{logs}</pre>"
    if job["state"] not in TERMINAL_JOB_STATES:
        # Live: new lines arrive as Server-Sent Events and are appended (htmx's SSE
        # extension); the stream ends with the attempt. Without script: reload.
        after = row["logs"][-1]["seq"] if row["logs"] else -1
        log_box = (
            f"<div hx-ext='sse' sse-connect='/jobs/{job['id']}/logs/stream?after={after}'"
            f" sse-close='end'><pre class='log' sse-swap='lines' hx-swap='beforeend'>{logs}</pre>"
            "</div>"
        )
    return (
        f"<h2 id='job-{job['id']}'>{escape(job['job_key'])} {state(job['state'])}</h2>"
        f"<p>{escape(job['context'])} · attempt {job['attempt']} · started {when(job['started_at'])} · "
        f"finished {when(job['finished_at'])}{' · ' + escape(job['reason']) if job['reason'] else ''}</p>"
        f"<h3>Metrics</h3><table>{metrics or '<tr><td>none</td></tr>'}</table>"
        f"<h3>Steps</h3><table><tr><th>#</th><th>name</th><th>status</th><th>exit</th><th>took</th></tr>{steps}</table>"
        f"{_artifact_list(row.get('artifacts') or [])}"
        f"{_record_table(job.get('record'))}"
        f"<h3>Log</h3><p><a href='/jobs/{job['id']}/log.txt' download>raw log</a></p>{log_box}"
    )


def _artifact_list(artifacts: list[dict[str, Any]]) -> str:
    if not artifacts:
        return ""
    items = "".join(
        f"<li><a href='{escape(a['url'])}'>{escape(a['path'])}</a> ({a['size_bytes']} bytes)</li>"
        for a in artifacts
    )
    return f"<h3>Artifacts</h3><ul>{items}</ul>"


def _record_table(record: dict[str, Any] | None) -> str:
    """How the number was made (image digest, host, GPUs, limits), for a reader to trust it."""
    if not record:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(key))}</td><td>{escape(_shown(value))}</td></tr>"
        for key, value in record.items()
    )
    return f"<h3>Record</h3><table>{rows}</table>"


def _shown(value: Any) -> str:
    if isinstance(value, float) and value > 1e9:
        return when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)
