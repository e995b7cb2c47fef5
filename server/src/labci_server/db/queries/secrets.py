"""Stored secrets: ciphertext only (labci_server.secrets encrypts and decrypts)."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from ..models import Secret
from ._insert import insert_ignore


async def secrets_in_scope(session: AsyncSession, scope: str) -> list[Secret]:
    stmt = select(Secret).where(Secret.scope == scope).order_by(col(Secret.name))
    return list((await session.exec(stmt)).all())


async def secret_named(session: AsyncSession, *, scope: str, name: str) -> Secret | None:
    stmt = select(Secret).where(Secret.scope == scope, Secret.name == name)
    return (await session.exec(stmt)).first()


async def count_in_scope(session: AsyncSession, scope: str) -> int:
    stmt = select(func.count()).select_from(Secret).where(Secret.scope == scope)
    return int((await session.exec(stmt)).one())


async def upsert_secret(
    session: AsyncSession,
    *,
    scope: str,
    repository_id: int | None,
    name: str,
    ciphertext: str,
    by: str | None,
    now: float,
) -> tuple[Secret, bool]:
    """Create the secret, or replace its ciphertext if (scope, name) exists; True if created.

    The unique (scope, name) key decides between two writers of the same name at once."""
    new_id = await insert_ignore(
        session,
        Secret,
        {
            "scope": scope,
            "repository_id": repository_id,
            "name": name,
            "ciphertext": ciphertext,
            "created_at": now,
            "updated_at": now,
            "updated_by": by,
        },
        unique=["scope", "name"],
    )
    row = await secret_named(session, scope=scope, name=name)
    if row is None:  # inserted or present: only a concurrent delete could get here
        raise LookupError(f"secret {name} of {scope} vanished while being stored")
    if new_id is None:
        row.ciphertext, row.updated_at, row.updated_by = ciphertext, now, by
        session.add(row)
    return row, new_id is not None


async def delete_secret(session: AsyncSession, *, scope: str, name: str) -> bool:
    row = await secret_named(session, scope=scope, name=name)
    if row is None:
        return False
    await session.delete(row)
    return True


async def secrets_for_scopes(
    session: AsyncSession, *, scopes: Collection[str], names: Collection[str]
) -> list[Secret]:
    """The secrets called one of `names` in any of `scopes`."""
    if not scopes or not names:
        return []
    stmt = select(Secret).where(col(Secret.scope).in_(scopes), col(Secret.name).in_(names))
    return list((await session.exec(stmt)).all())


async def all_secrets(session: AsyncSession, *, for_update: bool = False) -> list[Secret]:
    stmt = select(Secret).order_by(col(Secret.id))
    if for_update:
        stmt = stmt.with_for_update()
    return list((await session.exec(stmt)).all())
