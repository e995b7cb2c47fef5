"""people (users, API tokens, repository grants), server keys, hook tokens and forge facts
of repositories, revocable runners, one run per (commit, workflow, trigger)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", TEXT(), nullable=False),
        sa.Column("login", TEXT(), nullable=False),
        sa.Column("forge_user_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", TEXT(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_seen_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "login"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("token_hash", TEXT(), nullable=False),
        sa.Column("scope", TEXT(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "repository_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("level", TEXT(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repository_id", "user_id"),
    )
    op.create_index(
        op.f("ix_repository_grants_repository_id"),
        "repository_grants",
        ["repository_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_repository_grants_user_id"), "repository_grants", ["user_id"], unique=False
    )
    op.create_table(
        "server_keys",
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("value", TEXT(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("repositories") as batch:
        batch.add_column(sa.Column("hook_token_hash", TEXT(), nullable=True))
        batch.add_column(sa.Column("facts_checked_at", sa.Float(), nullable=True))
    with op.batch_alter_table("runners") as batch:
        batch.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))
    # Plain ADD COLUMN and an index: SQLite's batch copy of `runs` would trip its foreign keys.
    op.add_column("runs", sa.Column("dedupe_key", TEXT(), nullable=True))
    op.create_index(op.f("ix_runs_dedupe_key"), "runs", ["dedupe_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_dedupe_key"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("dedupe_key")
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("revoked_at")
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("facts_checked_at")
        batch.drop_column("hook_token_hash")
    op.drop_table("server_keys")
    op.drop_index(op.f("ix_repository_grants_user_id"), table_name="repository_grants")
    op.drop_index(op.f("ix_repository_grants_repository_id"), table_name="repository_grants")
    op.drop_table("repository_grants")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
