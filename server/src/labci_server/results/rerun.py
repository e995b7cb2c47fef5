"""A re-run of one context's jobs, asked for with the "Re-run" button of its check run.

The newest run of the commit that has the context gets its jobs back as new attempts (a
job with `needs` waits for them again, one skipped by its `if` stays skipped); their
metrics and the context's verdict are dropped, the status goes back to `pending`, and the
run is judged again when they finish, as the first time. A context whose jobs are still
going is left alone: a button pressed twice, or a webhook delivered twice, is one re-run.
"""

from __future__ import annotations

import logging

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES
from ..db.queries.repositories import find_repository
from ..db.queries.runs import forget_results, get_run, jobs_of_run, newest_run_with_context
from ..forge.outbox import enqueue_status
from ..queue import kick_outbox, kick_scheduler
from ..scheduling.retry import back_to_pending
from .ingest import settle_run

log = logging.getLogger(__name__)


async def rerun_context(
    sc: ServerContext,
    *,
    provider: str,
    repo_full_name: str,
    commit_sha: str,
    context: str,
    who: str,
) -> int | None:
    """Start the context's jobs again; returns the run's id, or None when there is nothing
    to re-run (unknown repository, commit or context, or jobs still going)."""
    reason = f"re-run requested by {who}"
    async with sc.sessions() as session, session.begin():
        repo = await find_repository(session, provider=provider, full_name=repo_full_name)
        if repo is None:
            return None
        found = await newest_run_with_context(
            session, repository_id=repo.id or 0, commit_sha=commit_sha, context=context
        )
        run = await get_run(session, found.id or 0, for_update=True) if found else None
        if run is None:
            return None
        rows = await jobs_of_run(session, run.id or 0)
        members = [row for row in rows if row.context == context]
        if any(row.state not in TERMINAL_JOB_STATES for row in members):
            log.info("%s of run %s is still going: no re-run", context, run.id)
            return None
        needing = {row.id for row in members if row.spec["job"].get("needs")}
        again = [row for row in members if row.state != "skipped" or row.id in needing]
        if not again:
            return None
        for job in again:
            back_to_pending(session, job, reason=reason)
            job.finished_at = None
            if job.id in needing:
                job.state = "waiting"  # decided again from its needs' outcomes
        await forget_results(session, again, run_id=run.id or 0, context=context)
        run_url = sc.run_url(run.id)
        await enqueue_status(
            session,
            repository_id=run.repository_id,
            commit_sha=run.commit_sha,
            context=context,
            state="pending",
            description=reason,
            target_url=run_url,
            rerun=True,
        )
        await settle_run(session, run, [], run_url=run_url)
        if run.state != "finished":
            run.conclusion, run.finished_at = None, None
        run_id = run.id
    log.info("%s of run %s: %s", context, run_id, reason)
    await kick_scheduler(sc.redis)
    await kick_outbox(sc.redis)
    return run_id
