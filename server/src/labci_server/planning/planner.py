"""Event + `.labci/*.yml` at the commit → Runs and Jobs, with `pending` statuses queued.

Planning is idempotent: the event moves from `received` to `planned` in the same
transaction that creates its runs, so a crash leaves it `received` for the reconciler.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import SpecErrors, Workflow, load_workflow, workflow_matches

from ..context import ServerContext
from ..db.models import Event, Job, Run
from ..db.queries.events import get_event, mark_event
from ..db.queries.repositories import get_repository
from ..forge.outbox import enqueue_status


@dataclass(frozen=True)
class BrokenFile:
    path: str
    errors: SpecErrors

    @property
    def context(self) -> str:
        return f"labci/{PurePosixPath(self.path).stem}"

    @property
    def description(self) -> str:
        first = self.errors.errors[0]
        more = len(self.errors.errors) - 1
        tail = f" (+{more} more)" if more else ""
        return f"{first.path}:{first.line}: {first.message}{tail}"


def select_workflows(
    event: Event, files: dict[str, bytes]
) -> tuple[list[Workflow], list[BrokenFile]]:
    branch = event.base_branch if event.kind == "pull_request" else event.branch
    chosen, broken = [], []
    for path, text in sorted(files.items()):
        try:
            workflow = load_workflow(text, path)
        except SpecErrors as exc:
            broken.append(BrokenFile(path, exc))
            continue
        if workflow_matches(workflow, event.kind, branch or ""):
            chosen.append(workflow)
    return chosen, broken


def job_context(workflow: Workflow, job_id: str) -> str:
    return f"labci/{workflow.name}/{job_id}"


async def plan_event(sc: ServerContext, event_id: int) -> list[int]:
    """Plan one event; returns the ids of the runs created (empty if already planned)."""
    async with sc.sessions() as session:
        event = await get_event(session, event_id)
        repo = await get_repository(session, event.repository_id) if event else None
    if event is None or repo is None or event.state != "received":
        return []
    files = await sc.forges[repo.provider].read_workflow_files(repo, event.commit_sha)
    workflows, broken = select_workflows(event, files)
    async with sc.sessions() as session, session.begin():
        if not await mark_event(session, event_id, from_state="received", to_state="planned"):
            return []
        run_ids = [await _create_run(sc, session, event, wf) for wf in workflows]
        for bad in broken:
            run_ids.append(await _record_broken(sc, session, event, bad))
    return run_ids


async def _create_run(sc: ServerContext, session: AsyncSession, event: Event, wf: Workflow) -> int:
    run = _new_run(event, wf.path, wf.name)
    session.add(run)
    await session.flush()
    for job_key, declared in wf.jobs.items():
        # Workflow-level env sits below the job's own env, as in GitHub Actions.
        spec = declared.model_copy(update={"env": {**wf.env, **declared.env}})
        job = Job(
            run_id=run.id or 0,
            job_key=job_key,
            context=job_context(wf, job_key),
            spec=spec.model_dump(mode="json"),
            runs_on=list(spec.runs_on),
            timeout_s=spec.timeout_s,
        )
        session.add(job)
        await enqueue_status(
            session,
            repository_id=event.repository_id,
            commit_sha=event.commit_sha,
            context=job.context,
            state="pending",
            description="queued",
            target_url=sc.run_url(run.id),
        )
    return run.id or 0


async def _record_broken(
    sc: ServerContext, session: AsyncSession, event: Event, bad: BrokenFile
) -> int:
    run = _new_run(event, bad.path, bad.context.removeprefix("labci/"))
    run.state, run.conclusion, run.error = "finished", "error", str(bad.errors)
    session.add(run)
    await session.flush()
    await enqueue_status(
        session,
        repository_id=event.repository_id,
        commit_sha=event.commit_sha,
        context=bad.context,
        state="error",
        description=bad.description,
        target_url=sc.run_url(run.id),
    )
    return run.id or 0


def _new_run(event: Event, path: str, name: str) -> Run:
    return Run(
        event_id=event.id or 0,
        repository_id=event.repository_id,
        workflow_path=path,
        workflow_name=name,
        commit_sha=event.commit_sha,
        trigger=event.kind,
        branch=event.branch,
        pr_number=event.pr_number,
    )
