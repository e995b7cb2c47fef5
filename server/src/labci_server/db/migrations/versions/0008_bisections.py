"""bisections of the default branch's change points, labci's comments on local commits, and a
per-repository budget of bisection runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "bisections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("workflow_path", TEXT(), nullable=False),
        sa.Column("workflow_name", TEXT(), nullable=False),
        sa.Column("context", TEXT(), nullable=False),
        sa.Column("metric", TEXT(), nullable=False),
        sa.Column("branch", TEXT(), nullable=False),
        sa.Column("good_sha", TEXT(), nullable=False),
        sa.Column("good_run_id", sa.Integer(), nullable=False),
        sa.Column("bad_sha", TEXT(), nullable=False),
        sa.Column("bad_run_id", sa.Integer(), nullable=False),
        sa.Column("level_before", sa.Float(), nullable=False),
        sa.Column("level_after", sa.Float(), nullable=False),
        sa.Column("noise", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=True),
        sa.Column("low", sa.Integer(), nullable=False),
        sa.Column("high", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("probing", TEXT(), nullable=True),
        sa.Column("state", TEXT(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("result_sha", TEXT(), nullable=True),
        sa.Column("result_run_id", sa.Integer(), nullable=True),
        sa.Column("parent_sha", TEXT(), nullable=True),
        sa.Column("parent_run_id", sa.Integer(), nullable=True),
        sa.Column("effect", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "context", "metric", "good_sha", "bad_sha"),
    )
    op.create_index(
        op.f("ix_bisections_repository_id"), "bisections", ["repository_id"], unique=False
    )
    op.create_index(op.f("ix_bisections_state"), "bisections", ["state"], unique=False)
    op.create_table(
        "commit_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("commit_sha", TEXT(), nullable=False),
        sa.Column("marker", TEXT(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "commit_sha", "marker"),
    )
    op.create_index(
        op.f("ix_commit_comments_repository_id"),
        "commit_comments",
        ["repository_id"],
        unique=False,
    )
    # Plain ADD COLUMN: SQLite's batch copy of `repositories` would trip its foreign keys.
    op.add_column("repositories", sa.Column("bisect_runs_per_day", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("bisect_runs_per_day")
    op.drop_index(op.f("ix_commit_comments_repository_id"), table_name="commit_comments")
    op.drop_table("commit_comments")
    op.drop_index(op.f("ix_bisections_state"), table_name="bisections")
    op.drop_index(op.f("ix_bisections_repository_id"), table_name="bisections")
    op.drop_table("bisections")
