"""One run per (repository, commit, workflow, trigger, branch or pull request).

A second push of a commit, a pull request's `reopened` after its `opened` at the same
head, or the same change delivered again under a new delivery id all name a run that
exists already. The planner stores each run with this key and the unique index on
`runs.dedupe_key` turns the second insert into nothing, so two workers planning two such
events at once still make one run. Manual runs (`workflow_dispatch`) have no key: every
one of them runs.

A run superseded by a newer head of its pull request gives its key up, so a head that
comes back (a force-push to the earlier commit) is planned again rather than left showing
the cancelled run.
"""

from __future__ import annotations

from ..db.models import Event

# Triggers that stand for a change to a commit; the others are asked for by someone.
KEYED_TRIGGERS = ("push", "pull_request", "baseline")


def dedupe_key(event: Event, workflow_path: str) -> str | None:
    """The key of the run of `workflow_path` for `event`, or None when it is never shared.

    Fields are `:`-separated: a git ref name cannot hold `:`, the rest are a trigger
    word, integers and a hex sha, and the path, which may, comes last.
    """
    if event.kind not in KEYED_TRIGGERS:
        return None
    if event.kind == "pull_request" and event.pr_number is not None:
        scope = f"pr={event.pr_number}"
    else:
        scope = f"branch={event.branch}"
    return f"{event.kind}:{event.repository_id}:{scope}:{event.commit_sha}:{workflow_path}"
