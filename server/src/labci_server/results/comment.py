"""The pull request comment, gathered from the head commit's runs and queued in the outbox.

Queued whenever a context of the head is judged; the outbox keeps only the newest unsent
version per pull request and upserts it (one comment per pull request, found again by its
marker). Contexts of the head not judged yet show as running.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import ContextVerdict, Job, Run
from ..db.queries.artifacts import artifacts_of
from ..db.queries.runs import jobs_of_run
from ..db.queries.verdicts import pull_request_head_runs, verdicts_of_runs
from ..forge.outbox import enqueue_comment
from .comment_render import Section, artifact_url, render, render_section


def site_of(run_url: str) -> str:
    """The server's public URL, from a run page's URL (`<site>/runs/<id>`)."""
    return run_url.rsplit("/runs/", 1)[0]


async def queue_comment(session: AsyncSession, run: Run, *, run_url: str) -> None:
    if run.pr_number is None:
        return
    site = site_of(run_url)
    runs = await pull_request_head_runs(
        session,
        repository_id=run.repository_id,
        pr_number=run.pr_number,
        commit_sha=run.commit_sha,
    )
    verdicts = {
        (v.run_id, v.context): v for v in await verdicts_of_runs(session, [r.id or 0 for r in runs])
    }
    sections: list[Section] = []
    for head_run in runs:
        sections.extend(await _sections(session, head_run, verdicts, site))
    body = render(run.commit_sha, sections)
    await enqueue_comment(
        session, repository_id=run.repository_id, pr_number=run.pr_number, body=body
    )


async def context_summary(session: AsyncSession, run: Run, context: str, *, run_url: str) -> str:
    """The markdown of one context of `run`, as the comment shows it."""
    verdicts = {(v.run_id, v.context): v for v in await verdicts_of_runs(session, [run.id or 0])}
    for section in await _sections(session, run, verdicts, site_of(run_url)):
        if section.context == context:
            return render_section(section)
    return ""


async def _sections(
    session: AsyncSession, run: Run, verdicts: dict[tuple[int, str], ContextVerdict], site: str
) -> list[Section]:
    url = f"{site}/runs/{run.id}"
    jobs = await jobs_of_run(session, run.id or 0)
    if not jobs:
        if run.error:  # a broken workflow file: the planner's error status
            first = run.error.splitlines()[0] if run.error else ""
            return [Section(f"labci/{run.workflow_name}", "error", first, run.id, url)]
        return []
    sections = []
    for context in dict.fromkeys(job.context for job in jobs):
        members = [job for job in jobs if job.context == context]
        verdict = verdicts.get((run.id or 0, context))
        if verdict is None:
            sections.append(Section(context, "running", "not finished yet", run.id, url))
            continue
        sections.append(
            Section(
                context,
                verdict.state,
                verdict.description,
                run.id,
                url,
                details=verdict.details,
                records=[_record(job) for job in members if job.record],
                artifacts=await _artifacts(session, members, site),
            )
        )
    return sections


def _record(job: Job) -> dict[str, Any]:
    return {"job": job.job_key, **(job.record or {})}


async def _artifacts(session: AsyncSession, members: list[Job], site: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for job in members:
        for artifact in await artifacts_of(session, job_id=job.id or 0, attempt=job.attempt):
            label = artifact.path if len(members) == 1 else f"{job.job_key}: {artifact.path}"
            found.append((label, artifact_url(site, job.id or 0, artifact.path)))
    return found
