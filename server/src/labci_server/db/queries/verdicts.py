"""Stored verdicts: one per (run, context), rewritten when an awaited baseline arrives."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import ContextVerdict, Run
from ._insert import insert_ignore


async def save_verdict(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert the verdict of (run, context), or overwrite the one stored."""
    if await insert_ignore(session, ContextVerdict, values, unique=["run_id", "context"]):
        return
    stmt = (
        select(ContextVerdict)
        .where(
            ContextVerdict.run_id == values["run_id"], ContextVerdict.context == values["context"]
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await session.exec(stmt)).one()
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = time.time()
    session.add(row)


async def verdicts_of_runs(session: AsyncSession, run_ids: list[int]) -> list[ContextVerdict]:
    if not run_ids:
        return []
    stmt = (
        select(ContextVerdict)
        .where(col(ContextVerdict.run_id).in_(run_ids))
        .order_by(col(ContextVerdict.context))
    )
    return list((await session.exec(stmt)).all())


async def verdicts_awaiting(
    session: AsyncSession,
    *,
    repository_id: int | None = None,
    baseline_sha: str | None = None,
    updated_before: float | None = None,
) -> list[ContextVerdict]:
    stmt = select(ContextVerdict).where(ContextVerdict.phase == "awaiting_baseline")
    if repository_id is not None:
        stmt = stmt.where(ContextVerdict.repository_id == repository_id)
    if baseline_sha is not None:
        stmt = stmt.where(ContextVerdict.baseline_sha == baseline_sha)
    if updated_before is not None:
        stmt = stmt.where(ContextVerdict.updated_at < updated_before)
    return list((await session.exec(stmt.order_by(col(ContextVerdict.id)))).all())


async def pull_request_head_runs(
    session: AsyncSession, *, repository_id: int, pr_number: int, commit_sha: str
) -> list[Run]:
    stmt = (
        select(Run)
        .where(
            Run.repository_id == repository_id,
            Run.pr_number == pr_number,
            Run.trigger == "pull_request",
            Run.commit_sha == commit_sha,
        )
        .order_by(col(Run.id))
    )
    return list((await session.exec(stmt)).all())
