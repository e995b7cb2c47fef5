"""Secrets of a repository or of the whole server: set, listed (names only), deleted,
re-encrypted with a new key, and checked when `labci serve` starts.

A value goes in once and never comes out through here: listings carry names and times,
and only `delivery.secrets_for_job` decrypts, for the runner of a job that references it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.engine import make_engine, make_sessionmaker
from ..db.models import Repository, Secret
from ..db.queries import secrets as queries
from ..errors import Conflict, NotFound, SecretKeyError
from ..settings import Settings
from .keys import SETTING, Keyring, cannot_open, load_keyring, require_keyring
from .names import MAX_SECRETS_PER_SCOPE, check_value, secret_name

Sessions = async_sessionmaker[AsyncSession]
SERVER_SCOPE = "server"
REPOSITORY_SCOPE_PREFIX = "repository:"
MAX_NAMED_IN_ERRORS = 3


@dataclass(frozen=True)
class Scope:
    """Where a secret lives: `key` as stored, `label` as shown to people."""

    key: str
    repository_id: int | None
    label: str

    @classmethod
    def server(cls) -> Scope:
        return cls(SERVER_SCOPE, None, "the server")

    @classmethod
    def of_repository(cls, repo: Repository) -> Scope:
        return cls(repository_scope(repo.id), repo.id, repo.full_name)


def repository_scope(repository_id: int | None) -> str:
    return f"{REPOSITORY_SCOPE_PREFIX}{repository_id}"


def describe(row: Secret) -> dict[str, Any]:
    """What anyone may see of a secret: never its value, nor its ciphertext."""
    return {
        "name": row.name,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "updated_by": row.updated_by,
    }


async def list_secrets(sessions: Sessions, scope: Scope) -> list[dict[str, Any]]:
    async with sessions() as session:
        return [describe(row) for row in await queries.secrets_in_scope(session, scope.key)]


async def put_secret(
    settings: Settings,
    sessions: Sessions,
    scope: Scope,
    *,
    name: str,
    value: str,
    by: str | None = None,
) -> dict[str, Any]:
    """Create or replace `name` in `scope`; its description, with `created` true or false."""
    name = secret_name(name)
    check_value(value)
    ciphertext = require_keyring(settings).encrypt(value)
    async with sessions() as session, session.begin():
        exists = await queries.secret_named(session, scope=scope.key, name=name) is not None
        if not exists and await queries.count_in_scope(session, scope.key) >= MAX_SECRETS_PER_SCOPE:
            raise Conflict(
                f"{scope.label} has {MAX_SECRETS_PER_SCOPE} secrets, the most it may have; "
                "delete one first"
            )
        row, created = await queries.upsert_secret(
            session,
            scope=scope.key,
            repository_id=scope.repository_id,
            name=name,
            ciphertext=ciphertext,
            by=by,
            now=time.time(),
        )
    return {**describe(row), "created": created}


async def delete_secret(sessions: Sessions, scope: Scope, *, name: str) -> str:
    name = secret_name(name)
    async with sessions() as session, session.begin():
        if not await queries.delete_secret(session, scope=scope.key, name=name):
            raise NotFound(f"{scope.label} has no secret {name}")
    return name


def where_kept(row: Secret) -> str:
    """A stored secret named for an operator's error message (its name and scope only)."""
    if row.scope == SERVER_SCOPE:
        return f"the server-wide secret {row.name}"
    return f"secret {row.name} of repository id {row.repository_id}"


async def rotate_key(settings: Settings, sessions: Sessions) -> int:
    """Re-encrypt every stored secret with the first key of LABCI_SECRET_KEY, in one
    transaction: if any secret opens with none of the keys, nothing changes."""
    keyring = require_keyring(settings)
    unopened: list[str] = []
    async with sessions() as session, session.begin():
        rows = await queries.all_secrets(session, for_update=True)
        for row in rows:
            try:
                row.ciphertext = keyring.rotate(row.ciphertext, what=where_kept(row))
            except SecretKeyError:
                unopened.append(where_kept(row))
                continue
            session.add(row)
        if unopened:
            raise SecretKeyError(_unopened_message(unopened) + "; nothing was re-encrypted")
    return len(rows)


async def check_stored_secrets(settings: Settings, sessions: Sessions) -> int:
    """SecretKeyError unless LABCI_SECRET_KEY is well-formed and opens every stored secret
    (`labci serve` checks this before it starts, so a job never meets a wrong key)."""
    keyring = load_keyring(settings.secret_key)
    async with sessions() as session:
        rows = await queries.all_secrets(session)
    if keyring is None:
        if rows:
            raise SecretKeyError(
                f"{SETTING} is not set, but {len(rows)} secret(s) are stored: set the key they "
                "were stored with"
            )
        return 0
    unopened = [where_kept(row) for row in rows if not _opens(keyring, row)]
    if unopened:
        raise SecretKeyError(_unopened_message(unopened))
    return len(rows)


def _opens(keyring: Keyring, row: Secret) -> bool:
    try:
        keyring.decrypt(row.ciphertext, what=where_kept(row))
    except SecretKeyError:
        return False
    return True


async def check_secret_key(settings: Settings) -> None:
    """`check_stored_secrets` on the configured database (for `labci serve`)."""
    engine = make_engine(settings.database_url)
    try:
        await check_stored_secrets(settings, make_sessionmaker(engine))
    finally:
        await engine.dispose()


def _unopened_message(unopened: list[str]) -> str:
    shown = ", ".join(unopened[:MAX_NAMED_IN_ERRORS])
    more = len(unopened) - MAX_NAMED_IN_ERRORS
    if more > 0:
        shown += f" and {more} more"
    return cannot_open(shown)
