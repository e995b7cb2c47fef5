"""an administrator's drain of a runner (no new job is placed on it until it is resumed),
and the runner's version

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("runners", sa.Column("drained_at", sa.Float(), nullable=True))
    op.add_column("runners", sa.Column("drained_by", TEXT(), nullable=True))
    op.add_column("runners", sa.Column("version", TEXT(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runners") as batch:
        batch.drop_column("version")
        batch.drop_column("drained_by")
        batch.drop_column("drained_at")
