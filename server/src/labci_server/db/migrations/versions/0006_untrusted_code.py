"""untrusted code: encrypted secrets, fork approval (per-repository policy, approvals bound
to a head commit, runs held until approved), job tokens found by hash

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", TEXT(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=True),
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", TEXT(), nullable=True),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "name"),
    )
    op.create_index(op.f("ix_secrets_repository_id"), "secrets", ["repository_id"], unique=False)
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("commit_sha", TEXT(), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=True),
        sa.Column("approved_by", TEXT(), nullable=False),
        sa.Column("via", TEXT(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "commit_sha"),
    )
    op.create_index(
        op.f("ix_approvals_repository_id"), "approvals", ["repository_id"], unique=False
    )
    # Plain ADD COLUMN with constant defaults: SQLite's batch copy would trip foreign keys.
    op.add_column(
        "repositories",
        sa.Column("fork_approval", TEXT(), nullable=False, server_default="all"),
    )
    op.add_column(
        "events", sa.Column("from_fork", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("events", sa.Column("author_association", TEXT(), nullable=True))
    # Fork events stored before this upgrade waited in a state nothing ever left: they are
    # planned now, as untrusted code held for approval.
    op.execute(
        "UPDATE events SET state = 'received', from_fork = TRUE WHERE state = 'awaiting_approval'"
    )
    op.add_column(
        "runs", sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    op.add_column("runs", sa.Column("approval", TEXT(), nullable=True))
    op.add_column("runs", sa.Column("approved_by", TEXT(), nullable=True))
    op.create_index(op.f("ix_jobs_job_token_hash"), "jobs", ["job_token_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_job_token_hash"), table_name="jobs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("approval")
        batch.drop_column("trusted")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("author_association")
        batch.drop_column("from_fork")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("fork_approval")
    op.drop_index(op.f("ix_approvals_repository_id"), table_name="approvals")
    op.drop_table("approvals")
    op.drop_index(op.f("ix_secrets_repository_id"), table_name="secrets")
    op.drop_table("secrets")
