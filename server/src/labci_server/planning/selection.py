"""Which workflows an event runs, and what to say about the files that cannot run.

    .labci/*.yml at the commit ─load─▶ workflows + broken files ─filters─▶ chosen ─expand─▶ instances

A broken file (invalid YAML or format, refused by a cap, a matrix that renders badly)
never stops its siblings: it becomes an `error` status whose description names the file,
line and column of its first problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from labci_spec import (
    EventFacts,
    ExpressionError,
    InputsError,
    JobInstance,
    SpecError,
    SpecErrors,
    Workflow,
    expand_job,
    load_workflow,
    resolve_inputs,
)

from ..db.models import Event
from ..forge.base import WorkflowFiles
from ..forge.outbox import clip_description


@dataclass(frozen=True)
class BrokenFile:
    path: str
    errors: list[SpecError]

    @property
    def context(self) -> str:
        return f"labci/{PurePosixPath(self.path).stem}"

    @property
    def description(self) -> str:
        first = self.errors[0]
        more = len(self.errors) - 1
        tail = f" (+{more} more)" if more else ""
        return clip_description(f"{first}{tail}")

    @property
    def text(self) -> str:
        return "\n".join(str(error) for error in self.errors)


@dataclass(frozen=True)
class PlannedWorkflow:
    workflow: Workflow
    instances: list[JobInstance]
    sha256: str | None = None  # of the file as read: part of a result's record


def measuring_jobs(workflow: Workflow) -> set[str]:
    """The jobs that report metrics, and every job they need (directly or not)."""
    chosen = {job_id for job_id, job in workflow.jobs.items() if job.metrics is not None}
    todo = list(chosen)
    while todo:
        for need in workflow.jobs[todo.pop()].needs:
            if need in workflow.jobs and need not in chosen:
                chosen.add(need)
                todo.append(need)
    return chosen


def load_workflows(
    listing: WorkflowFiles, *, only: str | None = None
) -> tuple[list[Workflow], list[BrokenFile]]:
    """Every file of the listing loaded (or `only` that one, for a manual run)."""
    workflows, broken = [], []
    for path, reason in listing.refused.items():
        if only in (None, path):
            broken.append(BrokenFile(path, [SpecError(path, 1, 1, reason)]))
    for path, text in listing.files.items():
        if only not in (None, path):
            continue
        loaded = _load_small(path, text) if len(text) <= CACHED_FILE_MAX_BYTES else None
        if loaded is None:
            loaded = _load(path, text)
        if isinstance(loaded, Workflow):
            workflows.append(loaded)
        else:
            broken.append(BrokenFile(path, list(loaded)))
    if only is not None and not workflows and not broken:
        message = f"no workflow file {only} at this commit"
        broken.append(BrokenFile(only, [SpecError(only, 1, 1, message)]))
    return workflows, broken


# A repository's workflow files change far less often than events arrive: most pushes leave
# `.labci/` alone, and parsing and validating a file cost more CPU than the rest of its plan
# on the database. Parsed files are kept by their bytes (the forge's blob cache hands out
# the same ones), small files only so that the cache stays small: 256 × 64 KiB at most.
# Nothing downstream modifies a Workflow, so one may serve many plans.
CACHED_FILE_MAX_BYTES = 64 * 1024


def _load(path: str, text: bytes) -> Workflow | tuple[SpecError, ...]:
    """The workflow, or what is wrong with the file (errors, not the exception: a kept
    exception would keep its traceback's frames)."""
    try:
        return load_workflow(text, path)
    except SpecErrors as exc:
        return tuple(exc.errors)


_load_small = lru_cache(maxsize=256)(_load)


def github_event_name(kind: str) -> str:
    """`github.event_name` of a run: a baseline measures its branch as a push to it would."""
    return "push" if kind == "baseline" else kind


def event_facts(event: Event, changed_files: list[str] | None) -> EventFacts:
    branch = event.base_branch if event.kind == "pull_request" else event.branch
    return EventFacts(
        kind=event.kind, branch=branch or "", action=event.action, changed_files=changed_files
    )


def expand(workflow: Workflow, event: Event) -> PlannedWorkflow | BrokenFile:
    """The job instances of a chosen workflow, with the manual run's inputs resolved; a
    baseline measurement runs only the jobs that report metrics and what they need."""
    try:
        inputs: dict[str, Any] = {}
        if event.kind == "workflow_dispatch" and workflow.on.workflow_dispatch is not None:
            inputs = resolve_inputs(workflow.on.workflow_dispatch, event.inputs or {})
        wanted = measuring_jobs(workflow) if event.kind == "baseline" else set(workflow.jobs)
        instances = [
            i
            for job in workflow.jobs
            if job in wanted
            for i in expand_job(workflow, job, inputs=inputs)
        ]
    except SpecErrors as exc:
        return BrokenFile(workflow.path, exc.errors)
    except ExpressionError as exc:  # e.g. fromJSON of a matrix value that is not JSON
        message = f"an expression cannot be evaluated: {exc.message}"
        return BrokenFile(workflow.path, [SpecError(workflow.path, 1, 1, message)])
    except InputsError as exc:
        return BrokenFile(workflow.path, [SpecError(workflow.path, 1, 1, f"inputs: {exc}")])
    return PlannedWorkflow(workflow, instances)
