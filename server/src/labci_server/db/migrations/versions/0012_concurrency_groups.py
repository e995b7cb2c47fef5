"""`concurrency:` groups: a run's workflow-level group, and indexes for the members of a
group that are not finished (runs and jobs)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
UNFINISHED_IN_GROUP = "concurrency_group IS NOT NULL AND state != 'finished'"
UNFINISHED_JOB_IN_GROUP = "concurrency_group IS NOT NULL AND finished_at IS NULL"


def upgrade() -> None:
    op.add_column("runs", sa.Column("concurrency_group", TEXT(), nullable=True))
    op.create_index(
        "ix_runs_concurrency_group",
        "runs",
        ["repository_id", "concurrency_group"],
        postgresql_where=sa.text(UNFINISHED_IN_GROUP),
        sqlite_where=sa.text(UNFINISHED_IN_GROUP),
    )
    op.create_index(
        "ix_jobs_concurrency_group",
        "jobs",
        ["concurrency_group"],
        postgresql_where=sa.text(UNFINISHED_JOB_IN_GROUP),
        sqlite_where=sa.text(UNFINISHED_JOB_IN_GROUP),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_concurrency_group", table_name="jobs")
    op.drop_index("ix_runs_concurrency_group", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("concurrency_group")
