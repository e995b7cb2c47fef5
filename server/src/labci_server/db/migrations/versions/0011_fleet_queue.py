"""the fleet: each pending job indexed by what it needs from a runner (its shape), its
priority and repository, and since when it waits; runners' CPUs and memory; a
repository's limit on jobs at once, and when it last had a job placed (the round robin); the
schedules (`on.schedule`) read from default branches

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 21:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("jobs", sa.Column("shape", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("repository_id", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("pending_since", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("max_parallel", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("concurrency_group", TEXT(), nullable=True))
    # The scheduler reads pending jobs only through these: by shape and repository in
    # queue order, and the ones not indexed yet. Partial, so finished jobs cost nothing.
    op.create_index(
        "ix_jobs_pending_queue",
        "jobs",
        ["shape", "repository_id", "priority", "id"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_jobs_pending_since",
        "jobs",
        ["pending_since"],
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )
    op.add_column("runners", sa.Column("resources", sa.JSON(), nullable=True))
    op.add_column("runners", sa.Column("removed_at", sa.Float(), nullable=True))
    op.add_column("repositories", sa.Column("max_jobs", sa.Integer(), nullable=True))
    op.add_column("repositories", sa.Column("last_placed_at", sa.Float(), nullable=True))
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("workflow_path", TEXT(), nullable=False),
        sa.Column("cron", TEXT(), nullable=False),
        sa.Column("branch", TEXT(), nullable=False),
        sa.Column("commit_sha", TEXT(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("last_fired_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "workflow_path", "cron"),
    )
    op.create_index(op.f("ix_schedules_next_at"), "schedules", ["next_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_schedules_next_at"), table_name="schedules")
    op.drop_table("schedules")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("last_placed_at")
        batch.drop_column("max_jobs")
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("removed_at")
        batch.drop_column("resources")
    op.drop_index("ix_jobs_pending_since", table_name="jobs")
    op.drop_index("ix_jobs_pending_queue", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("concurrency_group")
        batch.drop_column("max_parallel")
        batch.drop_column("pending_since")
        batch.drop_column("repository_id")
        batch.drop_column("priority")
        batch.drop_column("shape")
