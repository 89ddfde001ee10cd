"""an instance's agent health: internal errors, the last one, events abandoned at exit

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("internal_errors", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("last_internal_error", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column("abandoned_events", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("abandoned_events")
        batch_op.drop_column("last_internal_error")
        batch_op.drop_column("internal_errors")
