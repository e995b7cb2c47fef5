"""Adaptive repeats, the planning side: add the seeds a `seeds` event asks for to its run.

The workflow is read again at the run's commit (the same file, by its hash), the job's
repeats axis is given the next seeds (`labci_spec.extra_seeds`), and the instances of the
context's group with those seeds become new jobs of the run, which is open again until
they finish; the context is judged again then. Seeds the context already has are not
added twice. When nothing can be added (the file changed or broke, no such job), the
context is judged again at once, and decides with what it has.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from labci_spec import JobInstance, Workflow, expand_job, extra_seeds

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, Event, Job
from ..db.queries.events import mark_event
from ..db.queries.repositories import get_repository
from ..db.queries.runs import get_run, jobs_of_context
from ..results.ingest import settle_run
from ..results.publish import judge_and_publish, rejudge_awaiting
from ..results.seeds import KIND
from .selection import load_workflows

log = logging.getLogger(__name__)

__all__ = ["KIND", "plan_seeds"]


async def plan_seeds(sc: ServerContext, event: Event) -> list[int]:
    """Add the seed jobs `event` asks for; returns [run id] when jobs were added."""
    inputs: dict[str, Any] = event.inputs or {}
    run_id, context, upto = int(inputs["run_id"]), str(inputs["context"]), int(inputs["upto"])
    async with sc.sessions() as session:
        run = await get_run(session, run_id)
        repo = await get_repository(session, event.repository_id)
        members = await jobs_of_context(session, run_id, context)
    instances: list[JobInstance] = []
    why = "the run or its context is gone"
    if run is not None and repo is not None and members:
        listing = await sc.forges[repo.provider].read_workflow_files(repo, run.commit_sha)
        text = listing.files.get(run.workflow_path)
        workflows, _ = load_workflows(listing, only=run.workflow_path)
        if text is None or not workflows:
            why = f"{run.workflow_path} no longer loads at {run.commit_sha[:7]}"
        elif run.workflow_sha256 and hashlib.sha256(text).hexdigest() != run.workflow_sha256:
            why = f"{run.workflow_path} at {run.commit_sha[:7]} is not the file the run used"
        else:
            instances, why = _instances(workflows[0], members, upto)
    async with sc.sessions() as session, session.begin():
        if not await mark_event(session, event.id or 0, from_state="received", to_state="planned"):
            return []
        run = await get_run(session, run_id, for_update=True)
        if run is None:
            return []
        members = await jobs_of_context(session, run_id, context)
        present = {job.job_key for job in members}
        fresh = [i for i in instances if i.key not in present]
        run_url = sc.run_url(run.id)
        if not fresh:
            log.info("no seeds added to %s of run %s: %s", context, run_id, why)
            if members and all(job.state in TERMINAL_JOB_STATES for job in members):
                await judge_and_publish(session, run, context, members, run_url=run_url)
            # Verdicts waiting for this run's seeds decide with what there is.
            await rejudge_awaiting(session, repository_id=run.repository_id, sha=run.commit_sha)
            return []
        rows = [_new_job(run_id, members[0], instance) for instance in fresh]
        session.add_all(rows)
        run.state, run.conclusion, run.finished_at = "pending", None, None
        session.add(run)
        await session.flush()
        await settle_run(session, run, [], run_url=run_url)  # decides jobs waiting on needs
        log.info("added %d seeds to %s of run %s", len(rows), context, run_id)
    return [run_id]


def _instances(workflow: Workflow, members: list[Job], upto: int) -> tuple[list[JobInstance], str]:
    """The instances of the members' group with the seeds it lacks, or none and why."""
    first = JobInstance.model_validate(members[0].spec)
    job = workflow.jobs.get(first.job_id)
    metrics = job.metrics if job is not None else None
    if job is None or metrics is None or metrics.repeats is None or job.strategy is None:
        return [], f"job '{first.job_id}' has no repeats at this commit"
    axis = metrics.repeats
    declared = len(job.strategy.matrix.axes.get(axis, []))
    try:
        seeds = extra_seeds(job, max(0, min(upto, metrics.max_repeats or 0) - declared))
    except ValueError as exc:
        return [], str(exc)
    matrix = job.strategy.matrix.model_copy(
        update={"axes": {**job.strategy.matrix.axes, axis: seeds or [None]}}
    )
    widened = job.model_copy(
        update={"strategy": job.strategy.model_copy(update={"matrix": matrix})}
    )
    changed = workflow.model_copy(update={"jobs": {**workflow.jobs, job.id: widened}})
    wanted = set(seeds)
    found = [
        # The spec keeps the declared matrix: a seed not in it is one labci added.
        instance.model_copy(
            update={"job": instance.job.model_copy(update={"strategy": job.strategy})}
        )
        for instance in expand_job(changed, job.id, inputs=first.inputs)
        if instance.group == first.group and instance.matrix.get(axis) in wanted
    ]
    return found, "" if found else "every seed up to the maximum has run"


def _new_job(run_id: int, like: Job, instance: JobInstance) -> Job:
    """A job like the declared seeds' (whose `if:` already held), with another seed."""
    return Job(
        run_id=run_id,
        job_key=instance.key,
        workflow_job=instance.job_id,
        context=like.context,
        spec=instance.model_dump(mode="json", by_alias=True),
        runs_on=list(instance.job.runs_on),
        timeout_s=instance.job.timeout_s,
        state="waiting" if instance.job.needs else "pending",
    )
