"""Read models for the web UI and the JSON API: a run with its jobs, steps, logs, metrics."""

from __future__ import annotations

from typing import Any

from ..context import ServerContext
from ..db.queries import jobs as job_queries
from ..db.queries import outbox as outbox_queries
from ..db.queries.artifacts import artifacts_of_jobs
from ..db.queries.events import get_event
from ..db.queries.repositories import get_repository
from ..db.queries.runners import names_of_runners
from ..db.queries.runs import (
    get_run,
    jobs_of_run,
    metrics_of_jobs,
)
from ..db.queries.verdicts import verdicts_of_runs
from ..db.queries.visible import visible_runs
from ..errors import BadRequest, NotFound

MAX_LOG_LINES_SHOWN = 5000
# The run page's lines across all its jobs: a run of many chatty jobs opens on each job's
# share of this (at least PAGE_MIN_TAIL lines each, "show earlier" for the rest), so the
# page stays a few MB whatever the run printed.
PAGE_LOG_LINES = 20_000
PAGE_MIN_TAIL = 500


async def run_overview(
    sc: ServerContext,
    *,
    repository_ids: set[int] | None,
    limit: int = 50,
    commit_sha: str | None = None,
) -> list[dict[str, Any]]:
    """The newest runs in `repository_ids` (None: every repository), oldest first for one
    commit."""
    async with sc.sessions() as session:
        runs = await visible_runs(
            session, repository_ids=repository_ids, limit=limit, commit_sha=commit_sha or None
        )
        rows = []
        for run in runs:
            repo = await get_repository(session, run.repository_id)
            jobs = await jobs_of_run(session, run.id or 0)
            rows.append(
                {
                    "run": run.model_dump(),
                    "repository": repo.full_name if repo else "?",
                    "jobs": [
                        j.model_dump(include={"id", "job_key", "state", "context"}) for j in jobs
                    ],
                }
            )
    return rows


OUTBOX_STATES = ("pending", "sent", "dead", "superseded")


async def outbox_listing(sc: ServerContext, *, status: str, limit: int) -> list[dict[str, Any]]:
    """Forge messages in `status`, newest first: `dead` ones are what never reached the forge."""
    if status not in OUTBOX_STATES:
        raise BadRequest(f"status must be one of {', '.join(OUTBOX_STATES)}, not {status!r}")
    async with sc.sessions() as session:
        rows = await outbox_queries.recent_messages(session, status=status, limit=limit)
    return [
        {
            "repository": name,
            **m.model_dump(exclude={"body", "claimed_until", "repository_id"}),
        }
        for m, name in rows
    ]


async def run_detail(
    sc: ServerContext, run_id: int, *, log_tail: bool = False, log_jobs: set[int] | None = None
) -> dict[str, Any]:
    """A run with everything about it; each job's first MAX_LOG_LINES_SHOWN log lines, or
    with `log_tail` its last ones (the page: where a failure prints; fewer each when the
    run has many jobs, see PAGE_LOG_LINES), and whether there are more."""
    async with sc.sessions() as session:
        run = await get_run(session, run_id)
        if run is None:
            raise NotFound(f"run {run_id} does not exist")
        repo = await get_repository(session, run.repository_id)
        event = await get_event(session, run.event_id)
        jobs = await jobs_of_run(session, run_id)
        metrics = await metrics_of_jobs(session, [j.id or 0 for j in jobs])
        kept = await artifacts_of_jobs(session, {j.id or 0: j.attempt for j in jobs})
        statuses = await outbox_queries.commit_statuses(
            session, repository_id=run.repository_id, commit_sha=run.commit_sha
        )
        outbox = await outbox_queries.messages_for_commit(
            session, repository_id=run.repository_id, commit_sha=run.commit_sha
        )
        verdicts = await verdicts_of_runs(session, [run_id])
        shown = MAX_LOG_LINES_SHOWN
        if log_tail:
            shown = max(PAGE_MIN_TAIL, min(shown, PAGE_LOG_LINES // max(1, len(jobs))))
        runner_names = await names_of_runners(session, {j.runner_id for j in jobs if j.runner_id})
        job_rows = []
        for job in jobs:
            steps = await job_queries.steps_of_job(session, job_id=job.id or 0, attempt=job.attempt)
            # One row past the cap says whether there are more: a million-line job is not
            # read into memory to show its first 5,000 lines.
            if log_jobs is not None and job.id not in log_jobs:
                logs = []  # the page refreshing its parts needs no lines
            elif log_tail:
                logs = await job_queries.log_lines_before(
                    session,
                    job_id=job.id or 0,
                    attempt=job.attempt,
                    before_seq=2**31 - 1,
                    limit=shown + 1,
                )
            else:
                logs = await job_queries.log_lines(
                    session, job_id=job.id or 0, attempt=job.attempt, limit=MAX_LOG_LINES_SHOWN + 1
                )
            job_rows.append(
                {
                    "job": job.model_dump(exclude={"job_token_hash", "stale_token_hashes", "spec"}),
                    # The workflow jobs this one waits for: the run page draws the graph.
                    "needs": list((job.spec.get("job") or {}).get("needs") or []),
                    "runner": runner_names.get(job.runner_id or 0),
                    "steps": [s.model_dump() for s in steps],
                    "logs": [
                        line.model_dump() for line in (logs[-shown:] if log_tail else logs[:shown])
                    ],
                    "logs_truncated": len(logs) > shown,
                    "metrics": metrics.get(job.id or 0, {}),
                    "artifacts": [
                        {
                            **a.model_dump(include={"path", "size_bytes", "sha256"}),
                            "url": f"/api/v1/jobs/{job.id}/artifacts/{a.path}",
                        }
                        for a in kept.get(job.id or 0, [])
                    ],
                }
            )
    return {
        "run": run.model_dump(),
        # The badge token is a read credential of a private repository: never shown here.
        "repository": repo.model_dump(exclude={"badge_token"}) if repo else None,
        "event": event.model_dump(
            include={"id", "kind", "delivery_id", "received_at", "planned_at", "sender", "title"}
        )
        if event
        else None,
        "jobs": job_rows,
        "statuses": [s.model_dump() for s in statuses],
        "outbox": [m.model_dump(exclude={"body"}) for m in outbox],
        "verdicts": [
            {**v.model_dump(include={"context", "phase", "state", "description"}), **v.details}
            for v in verdicts
        ],
    }
