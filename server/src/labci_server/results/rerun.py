"""A re-run of one context's jobs, asked for with the "Re-run" button of its check run, or
of a run's checks, asked for with the run page's buttons.

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
from ..errors import NotFound
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
    async with sc.sessions() as session:
        repo = await find_repository(session, provider=provider, full_name=repo_full_name)
        found = (
            await newest_run_with_context(
                session, repository_id=repo.id or 0, commit_sha=commit_sha, context=context
            )
            if repo is not None
            else None
        )
    if found is None:
        return None
    started = await rerun_of_run(sc, found.id or 0, contexts=[context], who=who)
    return found.id if started else None


async def rerun_of_run(
    sc: ServerContext, run_id: int, *, contexts: list[str] | None, who: str
) -> list[str]:
    """Start again the run's `contexts` (None: every one of its checks) whose jobs have all
    ended (the run page's re-run buttons); returns the contexts started, in order. A
    context the run does not have is NotFound."""
    reason = f"re-run requested by {who}"
    async with sc.sessions() as session, session.begin():
        run = await get_run(session, run_id, for_update=True)
        if run is None:
            return []
        rows = await jobs_of_run(session, run.id or 0)
        known = list(dict.fromkeys(r.context for r in rows))
        unknown = [c for c in contexts or [] if c not in known]
        if unknown:
            raise NotFound(f"run {run_id} has no check {unknown[0]!r}")
        wanted = contexts if contexts is not None else known
        run_url = sc.run_url(run.id)
        started = []
        for context in wanted:
            members = [row for row in rows if row.context == context]
            if not members or any(row.state not in TERMINAL_JOB_STATES for row in members):
                log.info("%s of run %s is still going or unknown: no re-run", context, run.id)
                continue
            needing = {row.id for row in members if (row.spec.get("job") or {}).get("needs")}
            again = [row for row in members if row.state != "skipped" or row.id in needing]
            if not again:
                continue
            for job in again:
                back_to_pending(session, job, reason=reason)
                job.finished_at = None
                if job.id in needing:
                    job.state = "waiting"  # decided again from its needs' outcomes
            await forget_results(session, again, run_id=run.id or 0, context=context)
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
            started.append(context)
        if not started:
            return []
        await settle_run(session, run, [], run_url=run_url)
        if run.state != "finished":
            run.conclusion, run.finished_at = None, None
    log.info("%s of run %s: %s", ", ".join(started), run_id, reason)
    await kick_scheduler(sc.redis)
    await kick_outbox(sc.redis)
    return started
