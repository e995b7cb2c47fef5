"""Event + `.labci/*.yml` at the commit → Runs and Jobs, with their first statuses queued.

Planning is idempotent: the event moves from `received` to `planned` in the same
transaction that creates its runs, so a crash leaves it `received` for the reconciler.
Each matrix instance of a job is a Job row: `waiting` while its `needs` are unfinished,
`pending` when it can be scheduled, or already `skipped` when its `if:` is false.
Contexts get a `pending` status now, and their final one once their jobs are decided.

An event whose runs exist already (the same commit pushed again, a pull request's
`reopened` at the head it was `opened` at) is planned with nothing new: the database
refuses a second run with the same `dedupe_key` (see `dedupe`), and the statuses and jobs
come only with a run this event created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import (
    EventFacts,
    ExpressionError,
    JobInstance,
    Progress,
    Workflow,
    github_context,
    should_run,
    untrusted_problems,
    workflow_matches,
)
from labci_spec import needs_changed_files as filters_need_changes
from labci_spec.concurrency import Group, github_concurrency_context, resolve_group
from labci_spec.model import Concurrency

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, Event, Job, Repository, Run
from ..db.queries.events import get_event, mark_event, newer_head_of_pull_request
from ..db.queries.repositories import get_repository
from ..db.queries.runs import get_run, insert_run, open_runs_of_pull_request
from ..forge.outbox import enqueue_status
from ..results.autobase import KIND as KIND_BASELINE
from ..results.cancel import cancel_run
from ..results.ingest import mark_terminal, settle_run
from ..results.publish import rejudge_awaiting
from ..scheduling.cron_runs import learn_schedules
from .approval import held_for_approval
from .concurrency import join_groups
from .dedupe import dedupe_key
from .seeds import KIND as KIND_SEEDS
from .seeds import plan_seeds
from .selection import (
    BrokenFile,
    PlannedWorkflow,
    event_facts,
    expand,
    github_event_name,
    load_workflows,
)
from .stale import mark_superseded, moved_on_head
from .statuses import queued_statuses
from .vanished import settle_vanished


def job_context(workflow_name: str, group: str) -> str:
    return f"labci/{workflow_name}/{group}"


async def load_event(sc: ServerContext, event_id: int) -> tuple[Event, Repository] | None:
    """The event and its repository, when the event is still to be planned."""
    async with sc.sessions() as session:
        event = await get_event(session, event_id)
        repo = await get_repository(session, event.repository_id) if event else None
    if event is None or repo is None or event.state != "received":
        return None
    return event, repo


async def plan_event(
    sc: ServerContext, event_id: int, *, loaded: tuple[Event, Repository] | None = None
) -> list[int]:
    """Plan one event; returns the ids of the runs it created (empty if it was planned
    already, or if every run it names exists). `loaded`: what `load_event` just read, so
    that it is not read again (the worker reads it first to refresh the repository's
    facts)."""
    loaded = loaded or await load_event(sc, event_id)
    if loaded is None:
        return []
    event, repo = loaded
    if event.kind == KIND_SEEDS:
        return await plan_seeds(sc, event)
    if await _overtaken(sc, event):
        async with sc.sessions() as session, session.begin():
            await mark_event(session, event_id, from_state="received", to_state="planned")
        return []
    head = await moved_on_head(sc, event, repo)
    if head is not None:
        await mark_superseded(sc, event_id, head)
        return []
    selection = await _select(sc, event, repo)
    planned, broken = selection.planned, selection.broken
    async with sc.sessions() as session, session.begin():
        # The rows read above, known to this session without reading them again (enqueue_status
        # and settle_run look them up by id): two statements fewer per plan. Copies, so that
        # the caller's objects stay as they were. Merged before the event is marked: the
        # ORM update then brings the session's copy to `planned` too, where a copy merged
        # after it would say `received` to everything in this transaction that reads it.
        event = await session.merge(event, load=False)
        repo = await session.merge(repo, load=False)
        if not await mark_event(session, event_id, from_state="received", to_state="planned"):
            return []
        hold = await held_for_approval(session, repo, event)
        created = [await _create_run(sc, session, event, repo, plan, hold) for plan in planned]
        created += [await _record_broken(sc, session, event, bad) for bad in broken]
        run_ids = [run_id for run_id in created if run_id is not None]
        await settle_vanished(
            session,
            event,
            workflows=selection.workflows,
            facts=selection.facts,
            target_url=sc.run_url(run_ids[0]) if run_ids else None,
        )
        if event.kind == "pull_request" and event.pr_number is not None:
            await _supersede(sc, session, event)
        if event.kind == "push" and repo.default_branch and event.branch == repo.default_branch:
            # As on GitHub, what is scheduled is what the default branch's files say.
            await learn_schedules(
                session,
                repository_id=repo.id or 0,
                branch=event.branch,
                commit_sha=event.commit_sha,
                seen_at=event.received_at,
                workflows=selection.workflows,
            )
        if event.kind == KIND_BASELINE:
            # A base without the workflow or job ends the pull requests' wait at once.
            await rejudge_awaiting(session, repository_id=event.repository_id, sha=event.commit_sha)
    return run_ids


async def _overtaken(sc: ServerContext, event: Event) -> bool:
    """A pull request event whose head a later event already replaced runs nothing."""
    if event.kind != "pull_request" or event.pr_number is None:
        return False
    async with sc.sessions() as session:
        newer = await newer_head_of_pull_request(
            session,
            repository_id=event.repository_id,
            pr_number=event.pr_number,
            event_id=event.id or 0,
            sha=event.commit_sha,
        )
    return newer is not None


async def _supersede(sc: ServerContext, session: AsyncSession, event: Event) -> None:
    """A pull request's new head makes the unfinished runs of its earlier heads moot.

    Never the runs of the event's own head (a `reopened` at the same head keeps them).
    A superseded run gives its dedupe key up: if the head comes back to that commit, it
    is planned again instead of showing the cancelled run.
    """
    older = await open_runs_of_pull_request(
        session,
        repository_id=event.repository_id,
        pr_number=event.pr_number or 0,
        other_than_sha=event.commit_sha,
        before_event_id=event.id or 0,
    )
    for run in older:
        locked = await get_run(session, run.id or 0, for_update=True)
        if locked is not None and locked.state != "finished":
            locked.dedupe_key = None
            session.add(locked)
            reason = f"superseded by {event.commit_sha[:7]}"
            await cancel_run(session, locked, reason=reason, run_url=sc.run_url(locked.id))


@dataclass(frozen=True)
class _Selection:
    planned: list[PlannedWorkflow]
    broken: list[BrokenFile]
    workflows: dict[str, Workflow]  # every workflow that loaded, by path
    facts: EventFacts


async def _select(sc: ServerContext, event: Event, repo: Repository) -> _Selection:
    forge = sc.forges[repo.provider]
    listing = await forge.read_workflow_files(repo, event.commit_sha)
    only = (
        event.workflow_path if event.kind in ("workflow_dispatch", "baseline", "schedule") else None
    )
    workflows, broken = load_workflows(listing, only=only)
    changed = None
    if any(filters_need_changes(wf, event.kind) for wf in workflows):
        changed = await forge.changed_files(
            repo, base_sha=event.base_sha, head_sha=event.commit_sha, pr_number=event.pr_number
        )
    facts = event_facts(event, changed)
    planned: list[PlannedWorkflow] = []
    for workflow in workflows:
        # A baseline measures what a pull request is compared with, whatever `on:` says.
        if event.kind != "baseline" and not workflow_matches(workflow, facts):
            continue
        result = expand(workflow, event)
        if event.from_fork and not isinstance(result, BrokenFile):
            # A fork's file may not loosen its container nor pick its runners.
            problems = untrusted_problems(
                listing.files[workflow.path], workflow.path, allowed_labels=sc.settings.fork_labels
            )
            result = BrokenFile(workflow.path, problems) if problems else result
        if isinstance(result, BrokenFile):
            broken.append(result)
        elif result.instances or event.kind != "baseline":
            digest = hashlib.sha256(listing.files[workflow.path]).hexdigest()
            planned.append(replace(result, sha256=digest))
    return _Selection(planned, broken, {wf.path: wf for wf in workflows}, facts)


async def _create_run(
    sc: ServerContext,
    session: AsyncSession,
    event: Event,
    repo: Repository,
    plan: PlannedWorkflow,
    hold: tuple[str | None, str | None],
) -> int | None:
    """The run of `plan` with its jobs and first statuses; None when it exists already."""
    new = _new_run(event, plan.workflow.path, plan.workflow.name or "")
    new.workflow_sha256 = plan.sha256
    new.trusted = not event.from_fork
    new.approval, new.approved_by = hold
    run = await insert_run(session, new)
    if run is None:
        return None
    github = github_context(
        event=github_event_name(event.kind),
        branch=event.branch,
        base_branch=event.base_branch,
        sha=event.commit_sha,
        pr_number=event.pr_number,
    )
    groups = _Groups(
        github_concurrency_context(
            github,
            workflow=plan.workflow.name or "",
            repository=repo.full_name,
            run_id=run.id or 0,
        ),
        # labci's own measurements of a base join no group (planning/concurrency.py).
        enabled=event.kind != KIND_BASELINE,
    )
    inputs = plan.instances[0].inputs if plan.instances else {}
    run_group = groups.resolve(plan.workflow.concurrency, {"inputs": inputs})
    run.concurrency_group = run_group.name if isinstance(run_group, Group) else None
    rows = [_new_job(run, plan, instance, github, groups) for instance in plan.instances]
    if isinstance(run_group, str):
        groups.of_jobs.clear()  # none of its jobs runs: none takes a place in a group
        for row in rows:
            if row.state not in TERMINAL_JOB_STATES:
                mark_terminal(row, "error", run_group)
    session.add(run)
    session.add_all(rows)
    await session.flush()
    run_url = sc.run_url(run.id)
    await queued_statuses(session, run, rows, run_url=run_url)
    await settle_run(session, run, [row for row in rows if row.finished_at], run_url=run_url)
    await join_groups(
        session,
        run,
        run_group=run_group if isinstance(run_group, Group) else None,
        job_groups=groups.of_jobs,
        run_url=sc.run_url,
    )
    return run.id or 0


class _Groups:
    """The `concurrency:` groups of one run being planned: the run's and its jobs'."""

    def __init__(self, github: dict[str, str], *, enabled: bool) -> None:
        self.github = github
        self.enabled = enabled
        self.of_jobs: dict[str, Group] = {}

    def resolve(
        self, concurrency: Concurrency | None, contexts: dict[str, Any]
    ) -> Group | str | None:
        """The group, None, or why it cannot be resolved (the text of the job's error)."""
        if not self.enabled or concurrency is None:
            return None
        try:
            return resolve_group(concurrency, {**contexts, "github": self.github})
        except ExpressionError as exc:
            return f"`concurrency` cannot be evaluated: {exc.message}"

    def enter(self, job: Job, group: Group) -> None:
        """`job` is in `group`; a pending one (not one waiting for its needs) also takes
        its place there now, cancelling older members waiting (join_groups)."""
        job.concurrency_group = group.name
        if job.state != "pending":
            return
        known = self.of_jobs.get(group.name)
        # Instances that share a group: any one that cancels what is in progress does.
        cancel = group.cancel_in_progress or (known is not None and known.cancel_in_progress)
        self.of_jobs[group.name] = Group(group.name, cancel)


def _new_job(
    run: Run,
    plan: PlannedWorkflow,
    instance: JobInstance,
    github: dict[str, str],
    groups: _Groups,
) -> Job:
    job = Job(
        run_id=run.id or 0,
        job_key=instance.key,
        workflow_job=instance.job_id,
        context=job_context(plan.workflow.name or "", instance.group),
        spec=instance.model_dump(mode="json", by_alias=True),
        runs_on=list(instance.job.runs_on),
        timeout_s=instance.job.timeout_s,
    )
    declared = plan.workflow.jobs[instance.job_id].concurrency
    group = groups.resolve(declared, {"matrix": instance.matrix, "inputs": instance.inputs})
    if isinstance(group, str):
        mark_terminal(job, "error", group)
        return job
    if instance.job.needs:
        job.state = "waiting"
    else:
        try:
            runs = should_run(
                instance.job.if_,
                contexts={**instance.contexts, "github": github},
                progress=Progress(),
            )
        except ExpressionError as exc:
            mark_terminal(job, "error", f"`if` cannot be evaluated: {exc.message}")
            return job
        if not runs:
            mark_terminal(job, "skipped", "`if` condition is false")
            return job  # a job that does not run never enters its group
    if group is not None:
        groups.enter(job, group)
    return job


async def _record_broken(
    sc: ServerContext, session: AsyncSession, event: Event, bad: BrokenFile
) -> int | None:
    new = _new_run(event, bad.path, bad.context.removeprefix("labci/"))
    new.state, new.conclusion, new.error = "finished", "error", bad.text
    run = await insert_run(session, new)
    if run is None:
        return None  # recorded, and its status queued, by an earlier event
    if event.kind == KIND_BASELINE:
        return run.id or 0  # measured for a pull request: the base's author is not told
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
        dedupe_key=dedupe_key(event, path),
        branch=event.branch,
        pr_number=event.pr_number,
    )
