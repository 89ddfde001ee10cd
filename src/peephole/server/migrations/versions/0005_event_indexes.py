"""events: no index on type; the fingerprint index holds exceptions only

Every stored event paid for eight indexes. Two did not earn it: ``type`` alone (a handful of
values) serves no query better than (time, seq) or (service, time) do, and the fingerprint
index held a NULL entry for every snapshot and log line, where only exceptions have one and
only ``fingerprint = ?`` queries read it. Without them PostgreSQL spends ~4 us less CPU per
stored snapshot (docs/benchmarks.md "Server"). Existing databases lose the type index and
rebuild the fingerprint index from their exceptions (a table scan, at start).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_EXCEPTIONS_ONLY = sa.text("fingerprint IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type")
        batch_op.drop_index("ix_events_fingerprint_time")
        batch_op.create_index(
            "ix_events_fingerprint_time",
            ["fingerprint", "time"],
            unique=False,
            postgresql_where=_EXCEPTIONS_ONLY,
            sqlite_where=_EXCEPTIONS_ONLY,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_fingerprint_time")
        batch_op.create_index("ix_events_fingerprint_time", ["fingerprint", "time"], unique=False)
        batch_op.create_index("ix_events_type", ["type"], unique=False)
