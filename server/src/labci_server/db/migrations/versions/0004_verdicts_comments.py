"""verdicts per context, pull request comments (local forge), comment bodies in the outbox,
private repositories' badge tokens, GitHub App
installations, workflow file hashes of runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("commit_sha", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("context", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("baseline_sha", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "context"),
    )
    op.create_index(op.f("ix_verdicts_run_id"), "verdicts", ["run_id"], unique=False)
    op.create_index(op.f("ix_verdicts_repository_id"), "verdicts", ["repository_id"], unique=False)
    op.create_index(op.f("ix_verdicts_commit_sha"), "verdicts", ["commit_sha"], unique=False)
    op.create_table(
        "pull_request_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("pr_number", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "pr_number"),
    )
    op.create_index(
        op.f("ix_pull_request_comments_repository_id"),
        "pull_request_comments",
        ["repository_id"],
        unique=False,
    )
    # Plain ADD COLUMN: a batch copy of `repositories` would have to drop a table that
    # runs and events still point at, which SQLite refuses with foreign keys on.
    op.add_column("outbox", sa.Column("body", sa.Text(), nullable=True))
    op.add_column(
        "runs", sa.Column("workflow_sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column(
        "repositories",
        sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "repositories", sa.Column("badge_token", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
    )
    op.add_column("repositories", sa.Column("installation_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("installation_id")
        batch.drop_column("badge_token")
        batch.drop_column("private")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("body")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("workflow_sha256")
    op.drop_index(
        op.f("ix_pull_request_comments_repository_id"), table_name="pull_request_comments"
    )
    op.drop_table("pull_request_comments")
    op.drop_index(op.f("ix_verdicts_commit_sha"), table_name="verdicts")
    op.drop_index(op.f("ix_verdicts_repository_id"), table_name="verdicts")
    op.drop_index(op.f("ix_verdicts_run_id"), table_name="verdicts")
    op.drop_table("verdicts")
