"""Data access: plain functions over a SQLAlchemy session, one module per kind of record.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller owns the
transaction (``with db.session() as s, s.begin(): ...``), so a request or an agent message
is one commit.
"""

from __future__ import annotations


class NotFound(LookupError):
    """A record asked for by id that does not exist; the API answers 404 with ``str(exc)``."""
