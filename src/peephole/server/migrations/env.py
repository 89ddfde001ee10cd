"""Alembic environment: always given a live connection by ``peephole.server.migrations``."""

from __future__ import annotations

from alembic import context

from peephole.server.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("peephole's migrations run through peephole.server.migrations.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
