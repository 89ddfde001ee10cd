"""User tokens and agent keys: created once, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peephole.server.models import AgentKey, Token

ROLES = ("viewer", "debugger", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling the API."""

    name: str
    role: str

    def has(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(20)}"


def create_token(session: Session, name: str, role: str, token: Optional[str] = None) -> str:
    """Store a token for ``name`` with ``role``; return the token (the only time it is seen)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    token = token or new_secret("pht")
    session.add(Token(name=name, role=role, token_hash=hash_secret(token), created_at=time.time()))
    session.flush()
    return token


def find_token(session: Session, token: str) -> Optional[Principal]:
    row = session.scalars(select(Token).where(Token.token_hash == hash_secret(token))).first()
    return Principal(row.name, row.role) if row else None


def list_tokens(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(Token).order_by(Token.id))
    return [{"name": r.name, "role": r.role, "created_at": r.created_at} for r in rows]


def create_agent_key(session: Session, name: str, key: Optional[str] = None) -> str:
    key = key or new_secret("phk")
    session.add(AgentKey(name=name, key_hash=hash_secret(key), created_at=time.time()))
    session.flush()
    return key


def agent_key_name(session: Session, key: str) -> Optional[str]:
    """The name of the agent key ``key``, or None when it is unknown."""
    return session.scalars(
        select(AgentKey.name).where(AgentKey.key_hash == hash_secret(key))
    ).first()


def seed(
    session: Session, admin_token: Optional[str], agent_key: Optional[str]
) -> dict[str, str]:
    """Make sure an admin token and an agent key exist; return the ones created at random.

    Given values are added if missing (demo, tests). Without them, a database with no admin
    token (or no agent key) gets a new random one, returned so the server prints it once.
    """
    created: dict[str, str] = {}
    if admin_token:
        if find_token(session, admin_token) is None:
            create_token(session, "admin", "admin", admin_token)
    elif not session.scalar(select(func.count()).select_from(Token).where(Token.role == "admin")):
        created["admin_token"] = create_token(session, "admin", "admin")
    if agent_key:
        if agent_key_name(session, agent_key) is None:
            create_agent_key(session, "default", agent_key)
    elif not session.scalar(select(func.count()).select_from(AgentKey)):
        created["agent_key"] = create_agent_key(session, "default")
    return created
