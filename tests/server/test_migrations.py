"""The schema comes from Alembic migrations, and the migrations match the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from labci_server.db.engine import make_engine
from labci_server.db.migrate import upgrade


@pytest.fixture(params=["sqlite", "configured"])
def any_database_url(request, sqlite_url, database_url):
    return sqlite_url if request.param == "sqlite" else database_url


async def test_migrations_create_exactly_the_models(any_database_url):
    await upgrade(any_database_url)
    await upgrade(any_database_url)  # a second upgrade is a no-op
    engine = make_engine(any_database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
            tables = await conn.run_sync(lambda sync: sorted(sync.dialect.get_table_names(sync)))
    finally:
        await engine.dispose()
    assert diff == []
    assert {"events", "runs", "jobs", "steps", "log_lines", "metrics", "runners", "outbox"} <= set(
        tables
    )
    assert "alembic_version" in tables
