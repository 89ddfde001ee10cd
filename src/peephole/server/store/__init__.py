"""Data access: plain functions over a SQLAlchemy session, one module per kind of record.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller owns the
transaction (``with db.session() as s, s.begin(): ...``), so a request or an agent message
is one commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = ["NotFound", "by_prefix"]


class NotFound(LookupError):
    """A record asked for by id that does not exist; the API answers 404 with ``str(exc)``."""


def by_prefix(session: Session, column: Any, prefix: str, what: str) -> str:
    """The one id in ``column`` that starts with ``prefix`` (ids are long: people type the
    start, as with git), else :class:`NotFound` saying none or several match. Only asked
    when no id equals ``prefix``."""
    found: list[str] = (
        list(
            session.scalars(
                select(column).where(column.startswith(prefix, autoescape=True)).limit(3)
            )
        )
        if prefix
        else []
    )
    if len(found) == 1:
        return str(found[0])
    if not found:
        raise NotFound(f"{what} {prefix!r} not found")
    listed = ", ".join(sorted(found)[:2])
    raise NotFound(
        f"{what} id {prefix!r} is ambiguous: it starts {listed}"
        f"{' and more' if len(found) > 2 else ''}; give more characters"
    )
