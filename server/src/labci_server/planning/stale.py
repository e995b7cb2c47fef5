"""Pull request events whose commit is no longer the pull request's head when planned.

A forge may deliver a pull request's events out of order: the `opened` of head A can be
stored after the `synchronize` of head B was planned. Planned as it says, A would run and
its run would supersede (cancel) B's, leaving the pull request showing results for a commit
that is not its head. So before a pull request event is planned, the forge is asked for the
head now; when that is another commit, the event plans nothing (no run, no status, nothing
cancelled) and is marked `superseded`, with the reason in its `error`. When the forge cannot
say (it does not know the pull request), or when the head now is not a descendant of the
event's commit (a lagging API, a force push), the event is planned as it says.
"""

from __future__ import annotations

from ..context import ServerContext
from ..db.models import Event, Repository
from ..db.queries.events import get_event, mark_event

STATE_SUPERSEDED = "superseded"


async def moved_on_head(sc: ServerContext, event: Event, repo: Repository) -> str | None:
    """The pull request's head now, when the forge names a commit other than the event's."""
    if event.kind != "pull_request" or event.pr_number is None:
        return None
    forge = sc.forges[repo.provider]
    head = await forge.pull_request_head(repo, pr_number=event.pr_number, head_branch=event.branch)
    if head is None or head == event.commit_sha:
        return None
    # Only a head that moved on *past* the event's commit makes it stale: an API that still
    # shows the previous head a moment after a push (the event's commit is then newer, not
    # an ancestor) or a force push back must not keep the real head from running.
    return head if await forge.is_ancestor(repo, event.commit_sha, head) else None


async def mark_superseded(sc: ServerContext, event_id: int, head: str) -> None:
    """`received` → `superseded`, saying which head it lost to; a no-op if planned already."""
    async with sc.sessions() as session, session.begin():
        if not await mark_event(
            session, event_id, from_state="received", to_state=STATE_SUPERSEDED
        ):
            return
        event = await get_event(session, event_id)
        if event is not None:
            event.error = f"head moved on to {head[:7]} before this event was planned"
            session.add(event)
