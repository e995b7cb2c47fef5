from __future__ import annotations

import time
from typing import Any

from sqlmodel import col, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import CommitComment, CommitStatus, OutboxMessage, PullRequestComment, Repository
from ._insert import insert_ignore

TERMINAL_STATUS_STATES = ("success", "failure", "error")


async def insert_message(session: AsyncSession, values: dict[str, Any]) -> int | None:
    return await insert_ignore(
        session,
        OutboxMessage,
        values,
        unique=["repository_id", "commit_sha", "context", "state"],
    )


async def messages_for_context(
    session: AsyncSession, *, repository_id: int, commit_sha: str, context: str
) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.repository_id == repository_id,
            OutboxMessage.commit_sha == commit_sha,
            OutboxMessage.context == context,
        )
        .order_by(col(OutboxMessage.id))
    )
    return list((await session.exec(stmt)).all())


async def due_messages(
    session: AsyncSession, *, now: float, limit: int = 50
) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
            or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
        )
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def unsent_before(session: AsyncSession, message: OutboxMessage) -> bool:
    """Whether an older message for the same commit and context is still waiting."""
    stmt = select(OutboxMessage.id).where(
        OutboxMessage.repository_id == message.repository_id,
        OutboxMessage.commit_sha == message.commit_sha,
        OutboxMessage.context == message.context,
        OutboxMessage.status == "pending",
        col(OutboxMessage.id) < message.id,
    )
    return (await session.exec(stmt)).first() is not None


async def claim_message(
    session: AsyncSession, *, message_id: int, now: float, until: float
) -> int | None:
    """Take a due message for delivery; returns its try count including this one, or None
    if another pass holds it or it is not due. Counting the try here, in the same statement,
    means a crash mid-post (or a concurrent pass) is always seen by the next try."""
    stmt = (
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            col(OutboxMessage.status) == "pending",
            col(OutboxMessage.next_attempt_at) <= now,
            or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
        )
        .values(claimed_until=until, attempts=col(OutboxMessage.attempts) + 1)
        .returning(OutboxMessage.attempts)
    )
    row = (await session.exec(stmt)).first()  # type: ignore[call-overload]
    return None if row is None else int(row[0])


async def messages_by_status(session: AsyncSession, status: str) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage).where(OutboxMessage.status == status).order_by(col(OutboxMessage.id))
    )
    return list((await session.exec(stmt)).all())


async def recent_messages(
    session: AsyncSession, *, status: str, limit: int
) -> list[tuple[OutboxMessage, str]]:
    """The newest messages in `status`, with their repository's full name."""
    stmt = (
        select(OutboxMessage, Repository.full_name)
        .join(Repository, col(Repository.id) == col(OutboxMessage.repository_id))
        .where(OutboxMessage.status == status)
        .order_by(col(OutboxMessage.id).desc())
        .limit(limit)
    )
    return [(m, name) for m, name in (await session.exec(stmt)).all()]


async def add_commit_status(session: AsyncSession, values: dict[str, Any]) -> None:
    session.add(CommitStatus(**values))


async def commit_statuses(
    session: AsyncSession, *, repository_id: int, commit_sha: str
) -> list[CommitStatus]:
    stmt = (
        select(CommitStatus)
        .where(CommitStatus.repository_id == repository_id, CommitStatus.commit_sha == commit_sha)
        .order_by(col(CommitStatus.id))
    )
    return list((await session.exec(stmt)).all())


async def messages_for_commit(
    session: AsyncSession, *, repository_id: int, commit_sha: str
) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.repository_id == repository_id, OutboxMessage.commit_sha == commit_sha)
        .order_by(col(OutboxMessage.id))
    )
    return list((await session.exec(stmt)).all())


async def save_pull_request_comment(
    session: AsyncSession, *, repository_id: int, pr_number: int, body: str
) -> int:
    """Create or rewrite the local forge's comment of a pull request; returns its id."""
    values = {"repository_id": repository_id, "pr_number": pr_number, "body": body}
    new_id = await insert_ignore(
        session, PullRequestComment, values, unique=["repository_id", "pr_number"]
    )
    if new_id is not None:
        return new_id
    stmt = select(PullRequestComment).where(
        PullRequestComment.repository_id == repository_id,
        PullRequestComment.pr_number == pr_number,
    )
    row = (await session.exec(stmt)).one()
    row.body, row.updated_at = body, time.time()
    session.add(row)
    return row.id or 0


async def pull_request_comment(
    session: AsyncSession, *, repository_id: int, pr_number: int
) -> PullRequestComment | None:
    stmt = select(PullRequestComment).where(
        PullRequestComment.repository_id == repository_id,
        PullRequestComment.pr_number == pr_number,
    )
    return (await session.exec(stmt)).first()


async def save_commit_comment(
    session: AsyncSession, *, repository_id: int, commit_sha: str, marker: str, body: str
) -> int:
    """Create or rewrite the local forge's comment with `marker` on a commit; returns its id."""
    values = {
        "repository_id": repository_id,
        "commit_sha": commit_sha,
        "marker": marker,
        "body": body,
    }
    new_id = await insert_ignore(
        session, CommitComment, values, unique=["repository_id", "commit_sha", "marker"]
    )
    if new_id is not None:
        return new_id
    stmt = select(CommitComment).where(
        CommitComment.repository_id == repository_id,
        CommitComment.commit_sha == commit_sha,
        CommitComment.marker == marker,
    )
    row = (await session.exec(stmt)).one()
    if row.body != body:
        row.body, row.updated_at = body, time.time()
        session.add(row)
    return row.id or 0


async def commit_comments(
    session: AsyncSession, *, repository_id: int, commit_sha: str
) -> list[CommitComment]:
    stmt = (
        select(CommitComment)
        .where(CommitComment.repository_id == repository_id, CommitComment.commit_sha == commit_sha)
        .order_by(col(CommitComment.id))
    )
    return list((await session.exec(stmt)).all())
