"""runners: capabilities (host, container) and GPU inventory; jobs: GPUs assigned, record;
artifacts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runners") as batch:
        batch.add_column(
            sa.Column(
                "capabilities",
                sa.JSON(),
                nullable=False,
                server_default=sa.text('\'{"host": true, "container": false}\''),
            )
        )
        batch.add_column(sa.Column("gpus", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("gpu_ids", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("record", sa.JSON(), nullable=True))
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "attempt", "path"),
    )
    op.create_index(op.f("ix_artifacts_job_id"), "artifacts", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_artifacts_job_id"), table_name="artifacts")
    op.drop_table("artifacts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("record")
        batch.drop_column("gpu_ids")
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("gpus")
        batch.drop_column("capabilities")
