"""a repository's default branch, read with its other facts (change points are found on it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "repositories",
        sa.Column("default_branch", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    # GitHub repositories read their facts (now with the default branch) before their next
    # planning; until then, and for local repositories until `labci hook install` runs
    # again, readers take "main".
    op.execute("UPDATE repositories SET facts_checked_at = NULL WHERE provider = 'github'")


def downgrade() -> None:
    with op.batch_alter_table("repositories") as batch:
        batch.drop_column("default_branch")
