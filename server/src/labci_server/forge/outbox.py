"""The outbox: every forge message is stored first, then delivered here.

Guarantees: a message is posted at most once per (repository, commit, context, state)
— a retry first reads the forge back; messages for one commit and context go out in
order (a `pending` never overtakes the terminal status after it, and an unsent `pending`
is superseded once a terminal status exists); failures back off exponentially,
honouring `retry-after`/`x-ratelimit-reset`; a rejected message is dead-lettered with
its reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.models import OutboxMessage, Repository
from ..db.queries import outbox as queries
from ..db.queries.repositories import get_repository
from ..errors import ForgeRejected, ForgeUnavailable
from .base import Forge, StatusMessage

log = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 140
CLAIM_S = 60.0
TERMINAL = queries.TERMINAL_STATUS_STATES


@dataclass(frozen=True)
class OutboxPolicy:
    min_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    max_attempts: int = 12


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
) -> None:
    """Store a status for delivery; part of the caller's transaction."""
    earlier = await queries.messages_for_context(
        session, repository_id=repository_id, commit_sha=commit_sha, context=context
    )
    if state == "pending" and any(m.state in TERMINAL for m in earlier):
        return  # a late pending must never follow a terminal state
    if state in TERMINAL:
        for message in earlier:
            if message.status == "pending" and message.state == "pending":
                message.status = "superseded"
                session.add(message)
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


def backoff_s(attempts: int, policy: OutboxPolicy, hint_s: float | None) -> float:
    computed = min(policy.max_backoff_s, policy.min_backoff_s * 2 ** max(0, attempts - 1))
    return max(computed, hint_s or 0.0)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    forges: dict[str, Forge],
    policy: OutboxPolicy,
) -> int:
    """Deliver what is due; returns how many messages were sent."""
    now = time.time()
    async with sessions() as session:
        due = await queries.due_messages(session, now=now)
    sent = 0
    blocked: set[tuple[int, str, str]] = set()
    for message in due:
        key = (message.repository_id, message.commit_sha, message.context)
        if key in blocked:
            continue
        outcome = await _deliver_one(sessions, forges, policy, message)
        if outcome == "sent":
            sent += 1
        elif outcome != "skipped-claimed":
            blocked.add(key)
    return sent


async def _deliver_one(
    sessions: async_sessionmaker[AsyncSession],
    forges: dict[str, Forge],
    policy: OutboxPolicy,
    message: OutboxMessage,
) -> str:
    assert message.id is not None
    now = time.time()
    async with sessions() as session, session.begin():
        if await queries.unsent_before(session, message):
            return "waiting"
        tries = await queries.claim_message(
            session, message_id=message.id, now=now, until=now + CLAIM_S
        )
        if tries is None:
            return "skipped-claimed"
        repo = await get_repository(session, message.repository_id)
    if repo is None:
        await _finish(sessions, message.id, status="dead", error="repository no longer exists")
        return "dead"
    forge = forges[repo.provider]
    status = StatusMessage(
        message.commit_sha, message.context, message.state, message.description, message.target_url
    )
    try:
        # An earlier try may have landed without us hearing back: read the forge first.
        if tries > 1 and await forge.has_status(repo, status):
            await _finish(sessions, message.id, status="sent")
            return "sent"
        await forge.post_status(repo, status)
    except ForgeRejected as exc:
        log.warning("outbox: dead-lettering %s %s: %s", message.context, message.state, exc)
        await _finish(sessions, message.id, status="dead", error=str(exc))
        return "dead"
    except ForgeUnavailable as exc:
        return await _retry_later(sessions, policy, message.id, tries, repo, exc)
    await _finish(sessions, message.id, status="sent")
    return "sent"


async def _retry_later(
    sessions: async_sessionmaker[AsyncSession],
    policy: OutboxPolicy,
    message_id: int,
    attempts: int,
    repo: Repository,
    exc: ForgeUnavailable,
) -> str:
    async with sessions() as session, session.begin():
        row = await session.get(OutboxMessage, message_id)
        if row is None:
            return "gone"
        row.last_error = str(exc)
        row.claimed_until = None
        if attempts >= policy.max_attempts:
            row.status = "dead"
            row.last_error = f"gave up after {attempts} attempts: {exc}"
        else:
            row.next_attempt_at = time.time() + backoff_s(attempts, policy, exc.retry_after_s)
        session.add(row)
    log.info("outbox: message %s on %s will be retried (%s)", message_id, repo.full_name, exc)
    return "retry"


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
