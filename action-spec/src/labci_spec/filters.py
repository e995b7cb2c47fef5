"""Which workflows an event starts: the event, its activity type, branch and path filters.

Patterns follow GitHub's filter-pattern syntax (`labci_spec.globs`): `*`, `**`, `?`,
`+`, `[]`, and a leading `!` that negates; in a list, the last pattern that matches
decides. For a pull request, `branches` filter the *base* branch, and `paths` the files
the pull request changes (three-dot diff); for a push, the pushed branch and the files
changed since the previous head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labci_spec.globs import branches_pass, paths_pass
from labci_spec.model import Workflow
from labci_spec.triggers import PushTrigger


@dataclass(frozen=True)
class EventFacts:
    """What filters look at, in labci's words.

    `branch` is the pushed branch, or for a pull request its base branch. `changed_files`
    is None when unknown (a push creating a branch); path filters then let it through.
    """

    kind: str  # push | pull_request | workflow_dispatch | schedule
    branch: str
    action: str | None = None
    changed_files: Sequence[str] | None = None


def workflow_matches(workflow: Workflow, event: EventFacts) -> bool:
    """Whether `event` starts `workflow`."""
    on = workflow.on
    if event.kind == "push":
        return on.push is not None and _filters_pass(on.push, event)
    if event.kind == "pull_request":
        trigger = on.pull_request
        if trigger is None or (event.action or "opened") not in trigger.types:
            return False
        return _filters_pass(trigger, event)
    if event.kind == "workflow_dispatch":
        return on.workflow_dispatch is not None
    if event.kind == "schedule":
        return on.schedule is not None
    return False


def needs_changed_files(workflow: Workflow, kind: str) -> bool:
    """Whether deciding on `workflow` for a `kind` event needs the list of changed files."""
    trigger = getattr(workflow.on, kind, None) if kind in ("push", "pull_request") else None
    return isinstance(trigger, PushTrigger) and (
        trigger.paths is not None or trigger.paths_ignore is not None
    )


def branch_matches(patterns: list[str] | None, branch: str) -> bool:
    """Whether `branch` passes a `branches` filter; None matches every branch, [] none."""
    return branches_pass(branches=patterns, branches_ignore=None, branch=branch)


def _filters_pass(trigger: PushTrigger, event: EventFacts) -> bool:
    if not branches_pass(
        branches=trigger.branches, branches_ignore=trigger.branches_ignore, branch=event.branch
    ):
        return False
    return paths_pass(
        paths=trigger.paths, paths_ignore=trigger.paths_ignore, changed=event.changed_files
    )
