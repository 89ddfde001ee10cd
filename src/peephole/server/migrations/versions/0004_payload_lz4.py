"""events.payload compressed with lz4 on PostgreSQL (when the server is built with it)

PostgreSQL compresses a text value over ~2 KB (a snapshot's JSON) before storing it; its
default method, pglz, cost the database 39 us of CPU per 2 KB snapshot, lz4 21 us
(docs/benchmarks.md "Server"). Rows stored before keep their method; reading takes both.
A server built without lz4 refuses the method: the column keeps the default then.
SQLite stores text as is: nothing to do there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_compression("lz4"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_compression("default"))


def _compression(method: str) -> str:
    """A statement setting the payload's method, doing nothing where PostgreSQL lacks it
    (built without lz4, or older than 14, which has no SET COMPRESSION: run by EXECUTE, so
    its syntax error is raised when it runs and caught, not when the block is parsed)."""
    return (
        "DO $$ BEGIN "
        f"EXECUTE 'ALTER TABLE events ALTER COLUMN payload SET COMPRESSION {method}'; "
        "EXCEPTION WHEN feature_not_supported OR invalid_parameter_value "
        "OR undefined_object OR syntax_error THEN NULL; END $$"
    )
