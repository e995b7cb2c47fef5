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


V0_SPEC = {
    "id": "fit",
    "name": None,
    "runs_on": ["cpu"],
    "env": {"A": "1"},
    "timeout_minutes": 5,
    "steps": [{"name": None, "run": "python train.py", "env": {}}],
    "metrics": {"file": "metrics.json"},
}


async def test_jobs_planned_before_the_upgrade_keep_working(any_database_url):
    """A job in flight across the upgrade to 0002 is read by the new code, not lost."""
    import json

    from sqlalchemy import text

    from labci_spec import JobInstance

    await upgrade(any_database_url, "0001")
    engine = make_engine(any_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO repositories (id, provider, full_name, clone_url, created_at)"
                    " VALUES (1, 'git', '/r', '/r', 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO events (id, delivery_id, provider, kind, repository_id,"
                    " commit_sha, branch, state, received_at)"
                    " VALUES (1, 'd', 'git', 'push', 1, 'abc', 'main', 'planned', 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO runs (id, event_id, repository_id, workflow_path, workflow_name,"
                    " commit_sha, trigger, branch, state, created_at)"
                    " VALUES (1, 1, 1, '.labci/train.yml', 'train', 'abc', 'push', 'main',"
                    " 'running', 0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO jobs (id, run_id, job_key, context, spec, runs_on, env,"
                    " timeout_s, state, attempt, created_at)"
                    " VALUES (1, 1, 'fit', 'labci/train/fit', :spec, '[\"cpu\"]', '{}', 300,"
                    " 'running', 1, 0)"
                ),
                {"spec": json.dumps(V0_SPEC)},
            )
        await upgrade(any_database_url)
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT spec, workflow_job FROM jobs"))).one()
    finally:
        await engine.dispose()
    spec = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    instance = JobInstance.model_validate(spec)
    assert (instance.workflow, instance.key, instance.group, row[1]) == (
        "train",
        "fit",
        "fit",
        "fit",
    )
    assert (instance.job.runs_on, instance.job.timeout_minutes) == (["cpu"], 5)
    assert instance.job.steps[0].run == "python train.py"
    assert instance.job.metrics is not None
    assert instance.job.metrics.paths == ["metrics.json"]
