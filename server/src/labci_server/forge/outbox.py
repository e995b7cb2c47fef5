"""The outbox: every forge message is stored first, then delivered here.

Kinds of message: a commit status; a pull request's comment (`commit_sha` "pr:<number>",
context `COMMENT_CONTEXT`, state the hash of its body); a commit comment (a bisection's
finding: `commit_sha` the commit, context `COMMIT_COMMENT_PREFIX` + its name, which is also
its marker's); and check runs (`check_runs`).

Guarantees: a status is posted at most once per (repository, commit, context, state)
— a retry first reads the forge back; messages for one commit and context go out in
order (a `pending` never overtakes the terminal status after it, and an unsent `pending`
is superseded once a terminal status exists, or takes the newer description of a later
`pending`); a comment is upserted, and only its newest unsent version is sent. Failures
back off exponentially, honouring `retry-after`/`x-ratelimit-reset`; a rate limit without
either waits at least the policy's `rate_limit_wait_s`; a rejected message is
dead-lettered with its reason. Mutations are paced per forge credential (`pacing`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import OutboxMessage, Repository
from ..db.queries import outbox as queries
from ..db.queries.repositories import get_repository
from ..errors import ForgeRejected, ForgeUnavailable
from . import check_runs
from .base import COMMENT_MARKER_PREFIX, CommentMessage, CommitCommentMessage, Forge, StatusMessage
from .pacing import CredentialPaused, Pacer, Slot, credential_key, unpaced

log = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 140
CLAIM_S = 60.0
TERMINAL = queries.TERMINAL_STATUS_STATES


PR_COMMENT_MARKER = "<!-- labci:pr-comment -->"
COMMENT_CONTEXT = "labci/comment"
COMMIT_COMMENT_KIND = "commit-comment"
COMMIT_COMMENT_PREFIX = "labci/comment/"


def commit_comment_marker(name: str) -> str:
    """The hidden marker of the commit comment called `name` (e.g. "bisection-12")."""
    return f"{COMMENT_MARKER_PREFIX}{name} -->"


@dataclass(frozen=True)
class OutboxPolicy:
    min_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    max_attempts: int = 12
    # GitHub: a secondary rate limit without retry-after or x-ratelimit-* → wait ≥ 1 minute.
    rate_limit_wait_s: float = 60.0


def clip_description(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_DESCRIPTION_CHARS:
        return text
    return text[: MAX_DESCRIPTION_CHARS - 1] + "…"


async def enqueue_status(
    session: AsyncSession,
    *,
    repository_id: int,
    commit_sha: str,
    context: str,
    state: str,
    description: str,
    target_url: str | None,
    summary: str | None = None,
    rerun: bool = False,
) -> None:
    """Store a status for delivery (and its check run, for an App's repository); part of
    the caller's transaction. `rerun`: the context starts again after a final state (a
    re-run asked for), so its `pending` is no late message; `summary`: the check run's
    markdown (the description when None)."""
    earlier = await queries.messages_for_context(
        session, repository_id=repository_id, commit_sha=commit_sha, context=context
    )
    if state == "pending" and not rerun and any(m.state in TERMINAL for m in earlier):
        return  # a late pending must never follow a terminal state
    if state == "pending":
        unsent = [m for m in earlier if m.state == "pending" and m.status == "pending"]
        for message in unsent:  # never sent: it may as well say the newer thing
            message.description = clip_description(description)
            message.target_url = target_url
            session.add(message)
    if state in TERMINAL:
        for message in earlier:
            if message.status == "pending" and message.state == "pending":
                message.status = "superseded"
                session.add(message)
    live = [m for m in earlier if m.status in ("pending", "sent")]
    if live and live[-1].state != state:
        # The forge shows (or will show) another state: a state it showed before must be
        # posted again, after it, so the row moves to the end of the line.
        for message in [m for m in earlier if m.state == state and m.status != "pending"]:
            await session.delete(message)
        await session.flush()
    await queries.insert_message(
        session,
        {
            "repository_id": repository_id,
            "commit_sha": commit_sha,
            "context": context,
            "state": state,
            "description": clip_description(description),
            "target_url": target_url,
        },
    )
    if check_runs.mirrors(await session.get(Repository, repository_id)):
        check = check_runs.check_run_of_status(
            commit_sha=commit_sha,
            context=context,
            state=state,
            description=clip_description(description),
            target_url=target_url,
            summary=summary,
        )
        await _enqueue_upsert(
            session,
            repository_id=repository_id,
            kind=check_runs.KIND,
            commit_sha=commit_sha,
            context=check_runs.PREFIX + context,
            body=check_runs.body_of(check),
            description=check.title,
            target_url=check.details_url,
        )


async def enqueue_comment(
    session: AsyncSession, *, repository_id: int, pr_number: int, body: str
) -> None:
    """Store the pull request's comment as it should read now; part of the caller's
    transaction."""
    await _enqueue_upsert(
        session,
        repository_id=repository_id,
        kind="comment",
        commit_sha=f"pr:{pr_number}",
        context=COMMENT_CONTEXT,
        body=body,
        description=f"pull request #{pr_number} comment",
    )


async def enqueue_commit_comment(
    session: AsyncSession, *, repository_id: int, commit_sha: str, name: str, body: str
) -> None:
    """Store labci's comment `name` about a commit as it should read now (its body starts
    with `commit_comment_marker(name)`); part of the caller's transaction."""
    await _enqueue_upsert(
        session,
        repository_id=repository_id,
        kind=COMMIT_COMMENT_KIND,
        commit_sha=commit_sha,
        context=COMMIT_COMMENT_PREFIX + name,
        body=body,
        description=f"comment on {commit_sha[:7]}",
    )


async def _enqueue_upsert(
    session: AsyncSession,
    *,
    repository_id: int,
    kind: str,
    commit_sha: str,
    context: str,
    body: str,
    description: str,
    target_url: str | None = None,
) -> None:
    """Store what an upserted message (the PR comment, a check run) should read now, its
    state the hash of `body`: older unsent versions are superseded, an unchanged body is not
    sent again, and a body it read before is sent again from its old row."""
    state = hashlib.sha256(body.encode()).hexdigest()[:40]
    earlier = await queries.messages_for_context(
        session, repository_id=repository_id, commit_sha=commit_sha, context=context
    )
    live = [m for m in earlier if m.status in ("pending", "sent")]
    if live and live[-1].state == state:
        return
    for message in earlier:
        if message.status == "pending":
            message.status = "superseded"
            session.add(message)
    same = [m for m in earlier if m.state == state]
    if same:
        row = same[0]
        row.status, row.attempts, row.next_attempt_at = "pending", 0, time.time()
        row.claimed_until, row.last_error = None, None
        session.add(row)
        return
    await queries.insert_message(
        session,
        {
            "repository_id": repository_id,
            "kind": kind,
            "commit_sha": commit_sha,
            "context": context,
            "state": state,
            "description": description,
            "target_url": target_url,
            "body": body,
        },
    )


def backoff_s(
    attempts: int, policy: OutboxPolicy, hint_s: float | None, *, rate_limited: bool = False
) -> float:
    computed = min(policy.max_backoff_s, policy.min_backoff_s * 2 ** max(0, attempts - 1))
    if rate_limited and hint_s is None:
        # GitHub: at least the minimum wait, then exponentially longer while it persists.
        slow = policy.rate_limit_wait_s * 2 ** max(0, attempts - 1)
        computed = max(computed, policy.rate_limit_wait_s, min(policy.max_backoff_s, slow))
    return max(computed, hint_s or 0.0)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    forges: dict[str, Forge],
    policy: OutboxPolicy,
    pacer: Pacer | None = None,
) -> int:
    """Deliver what is due; returns how many messages were sent."""
    now = time.time()
    async with sessions() as session:
        due = await queries.due_messages(session, now=now)
    sent = 0
    blocked: set[tuple[int, str, str]] = set()
    paused: set[str | None] = set()
    repos: dict[int, Repository | None] = {}
    for message in due:
        key = (message.repository_id, message.commit_sha, message.context)
        if key in blocked:
            continue
        if message.repository_id not in repos:
            async with sessions() as session:
                repos[message.repository_id] = await get_repository(session, message.repository_id)
        repo = repos[message.repository_id]
        if repo is None:
            await _finish(sessions, message.id, status="dead", error="repository no longer exists")
            continue
        credential = credential_key(repo)
        if credential in paused:
            continue
        try:
            outcome = await _deliver_one(sessions, forges, policy, message, repo, pacer)
        except CredentialPaused as exc:
            log.info("outbox: holding messages for %s: %s", repo.full_name, exc)
            paused.add(credential)
            continue
        if outcome == "sent":
            sent += 1
        elif outcome != "skipped-claimed":
            blocked.add(key)
        if outcome == "rate-limited":
            paused.add(credential)
    return sent


async def _deliver_one(
    sessions: async_sessionmaker[AsyncSession],
    forges: dict[str, Forge],
    policy: OutboxPolicy,
    message: OutboxMessage,
    repo: Repository,
    pacer: Pacer | None,
) -> str:
    assert message.id is not None
    async with sessions() as session:
        if await queries.unsent_before(session, message):
            return "waiting"
    pacing = pacer.slot(credential_key(repo)) if pacer else unpaced()
    async with pacing as slot:
        now = time.time()
        async with sessions() as session, session.begin():
            if await queries.unsent_before(session, message):
                return "waiting"
            tries = await queries.claim_message(
                session, message_id=message.id, now=now, until=now + CLAIM_S
            )
            if tries is None:
                return "skipped-claimed"
        try:
            await _send(forges[repo.provider], repo, message, tries, slot)
        except ForgeRejected as exc:
            log.warning("outbox: dead-lettering %s %s: %s", message.context, message.state, exc)
            await _finish(sessions, message.id, status="dead", error=str(exc))
            return "dead"
        except ForgeUnavailable as exc:
            wait = await _retry_later(sessions, policy, message.id, tries, repo, exc)
            if exc.rate_limited:
                # The limit is the credential's, not the message's: hold every write with it.
                slot.pause(wait)
                return "rate-limited"
            return "retry"
    await _finish(sessions, message.id, status="sent")
    return "sent"


async def _send(
    forge: Forge, repo: Repository, message: OutboxMessage, tries: int, slot: Slot
) -> None:
    await slot.ready()
    if message.kind == check_runs.KIND:
        # Idempotent too: the forge finds the check run by its external id first.
        await forge.upsert_check_run(repo, check_runs.message_of(message))
        return
    if message.kind == COMMIT_COMMENT_KIND:
        # Idempotent too: the forge finds the marked comment on the commit or its pull request.
        marker = commit_comment_marker(message.context.removeprefix(COMMIT_COMMENT_PREFIX))
        await forge.comment_on_commit(
            repo, CommitCommentMessage(message.commit_sha, marker, message.body or "")
        )
        return
    if message.kind == "comment":
        pr_number = int(message.commit_sha.removeprefix("pr:"))
        # Idempotent by construction: the forge finds the marked comment before writing.
        await forge.upsert_comment(
            repo, CommentMessage(pr_number, PR_COMMENT_MARKER, message.body or "")
        )
        return
    status = StatusMessage(
        message.commit_sha, message.context, message.state, message.description, message.target_url
    )
    # An earlier try may have landed without us hearing back: read the forge first.
    if tries > 1 and await forge.has_status(repo, status):
        return
    await forge.post_status(repo, status)


async def _retry_later(
    sessions: async_sessionmaker[AsyncSession],
    policy: OutboxPolicy,
    message_id: int,
    attempts: int,
    repo: Repository,
    exc: ForgeUnavailable,
) -> float:
    """Schedule the next try (or dead-letter after the last); returns the wait."""
    wait = backoff_s(attempts, policy, exc.retry_after_s, rate_limited=exc.rate_limited)
    async with sessions() as session, session.begin():
        row = await session.get(OutboxMessage, message_id)
        if row is None:
            return wait
        row.last_error = str(exc)
        row.claimed_until = None
        if attempts >= policy.max_attempts:
            row.status = "dead"
            row.last_error = f"gave up after {attempts} attempts: {exc}"
        else:
            row.next_attempt_at = time.time() + wait
        session.add(row)
    log.info(
        "outbox: message %s on %s: %s (next try in %.1f s)", message_id, repo.full_name, exc, wait
    )
    return wait


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    message_id: int,
    *,
    status: str,
    error: str | None = None,
) -> None:
    async with sessions() as session, session.begin():
        row = await session.get(OutboxMessage, message_id)
        if row is None:
            return
        row.status = status
        row.claimed_until = None
        if status == "sent":
            row.sent_at = time.time()
        if error:
            row.last_error = error
        session.add(row)
