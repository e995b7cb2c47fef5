"""Schema management through Alembic: `labci db upgrade|current|history`, and at the start
of serve and dev."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from .engine import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


# Any constant: the key of the PostgreSQL advisory lock that upgrades hold ("labci").
UPGRADE_LOCK_KEY = 0x6C616263


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema to `revision`. Server replicas may start together (each `labci
    serve` upgrades unless told `--no-migrate`): on PostgreSQL an upgrade holds an advisory
    lock for its transaction, so the others wait for it and then find nothing to do. (SQLite
    serves one machine; start its processes one after another.)"""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY}
                )
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
    finally:
        await engine.dispose()


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None: no labci schema yet."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def revisions() -> list[tuple[str, str]]:
    """Every migration, oldest first: (revision, its one-line description)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    found = [(s.revision, (s.doc or "").strip().split("\n")[0]) for s in scripts.walk_revisions()]
    return list(reversed(found))
