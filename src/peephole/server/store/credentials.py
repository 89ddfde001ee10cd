"""User tokens and agent keys: created once, shown once, stored as SHA-256.

A credential may expire (``expires_at``) and may be revoked (``revoked_at``); either way it
stops working at once: it is looked up on every request (no cache), and the live streams and
agent connections that used it are closed (``peephole.server.broker``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from peephole.server.models import AgentKeyRow, TokenRow
from peephole.server.store import NotFound

__all__ = [
    "AgentGrant",
    "Principal",
    "create_agent_key",
    "create_token",
    "find_agent_key",
    "find_token",
    "hash_secret",
    "list_agent_keys",
    "list_tokens",
    "no_longer_valid",
    "revoke_agent_key",
    "revoke_token",
    "seed",
    "why_invalid",
]

ROLES = ("viewer", "debugger", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling the API: a token's unique id, its (not unique) name and role."""

    name: str
    role: str
    id: Optional[int] = None
    expires_at: Optional[float] = None

    def has(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class AgentGrant:
    """What an agent key allows: ``services`` (None: any), until ``expires_at``."""

    id: int
    name: str
    services: Optional[tuple[str, ...]]
    expires_at: Optional[float]

    def allows(self, service: str) -> bool:
        return self.services is None or service in self.services


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode(errors="surrogatepass")).hexdigest()


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(20)}"


def why_invalid(row: Any, now: float) -> Optional[str]:
    """Why a credential row does not work at ``now`` (``"revoked"``, ``"expired"``), or None:
    the one rule for finding, listing and dropping tokens and agent keys."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return None


def _find(session: Session, model: Any, column: Any, secret: str, now: Optional[float]) -> Any:
    """The valid row whose hash column holds ``secret``'s hash (hashes are unique), or None."""
    row = session.scalars(select(model).where(column == hash_secret(secret))).first()
    valid = row is not None and why_invalid(row, time.time() if now is None else now) is None
    return row if valid else None


def create_token(
    session: Session,
    name: str,
    role: str,
    token: Optional[str] = None,
    expires_at: Optional[float] = None,
) -> tuple[int, str]:
    """Store a token for ``name`` with ``role``; return its id and the token (the only time
    it is seen)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    token = token or new_secret("pht")
    row = TokenRow(
        name=name,
        role=role,
        token_hash=hash_secret(token),
        created_at=time.time(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row.id, token


def find_token(session: Session, token: str, now: Optional[float] = None) -> Optional[Principal]:
    """The caller behind ``token``, if it is known, not revoked and not expired."""
    row = _find(session, TokenRow, TokenRow.token_hash, token, now)
    return Principal(row.name, row.role, row.id, row.expires_at) if row else None


def token_dict(row: TokenRow, now: float) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "active": why_invalid(row, now) is None,
    }


def list_tokens(session: Session) -> list[dict[str, Any]]:
    now = time.time()
    return [token_dict(r, now) for r in session.scalars(select(TokenRow).order_by(TokenRow.id))]


def _revoke(session: Session, model: Any, row_id: int, now: float, what: str) -> Any:
    """Mark a credential revoked (the row stays, for the audit log); twice changes nothing."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} {row_id} not found")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def revoke_token(session: Session, token_id: int, now: float) -> dict[str, Any]:
    return token_dict(_revoke(session, TokenRow, token_id, now, "token"), now)


def create_agent_key(
    session: Session,
    name: str,
    key: Optional[str] = None,
    expires_at: Optional[float] = None,
    services: Optional[list[str]] = None,
) -> tuple[int, str]:
    key = key or new_secret("phk")
    row = AgentKeyRow(
        name=name,
        key_hash=hash_secret(key),
        created_at=time.time(),
        expires_at=expires_at,
        services=services,
    )
    session.add(row)
    session.flush()
    return row.id, key


def find_agent_key(session: Session, key: str, now: Optional[float] = None) -> Optional[AgentGrant]:
    """What ``key`` allows, if it is known, not revoked and not expired."""
    row = _find(session, AgentKeyRow, AgentKeyRow.key_hash, key, now)
    if row is None:
        return None
    services = tuple(row.services) if row.services is not None else None
    return AgentGrant(row.id, row.name, services, row.expires_at)


def agent_key_dict(row: AgentKeyRow, now: float) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "services": row.services,
        "active": why_invalid(row, now) is None,
    }


def list_agent_keys(session: Session) -> list[dict[str, Any]]:
    now = time.time()
    return [
        agent_key_dict(r, now)
        for r in session.scalars(select(AgentKeyRow).order_by(AgentKeyRow.id))
    ]


def revoke_agent_key(session: Session, key_id: int, now: float) -> dict[str, Any]:
    return agent_key_dict(_revoke(session, AgentKeyRow, key_id, now, "agent key"), now)


def no_longer_valid(
    session: Session, token_ids: set[int], key_ids: set[int], now: float
) -> list[tuple[str, int, str]]:
    """Which of these credentials were revoked, expired or deleted: ``(kind, id, why)``."""
    found: list[tuple[str, int, str]] = []
    kinds: list[tuple[str, Any, set[int]]] = [
        ("token", TokenRow, token_ids),
        ("agent_key", AgentKeyRow, key_ids),
    ]
    for kind, model, ids in kinds:
        if not ids:
            continue
        matching: Iterable[Any] = session.scalars(select(model).where(model.id.in_(ids)))
        rows = {r.id: r for r in matching}
        for credential_id in sorted(ids):
            row = rows.get(credential_id)
            why = "revoked" if row is None else why_invalid(row, now)  # deleted: as revoked
            if why is not None:
                found.append((kind, credential_id, why))
    return found


def seed(session: Session, admin_token: Optional[str], agent_key: Optional[str]) -> dict[str, str]:
    """Make sure an admin token and an agent key exist; return the ones created at random.

    Given values are added if missing (demo, tests). Without them, a database with no admin
    token (or no agent key) gets a new random one, returned so the server prints it once.
    A given value that was revoked stays revoked.
    """
    created: dict[str, str] = {}
    if admin_token:
        if not session.scalar(
            select(TokenRow.id).where(TokenRow.token_hash == hash_secret(admin_token))
        ):
            create_token(session, "admin", "admin", admin_token)
    elif not session.scalar(
        select(func.count()).select_from(TokenRow).where(TokenRow.role == "admin")
    ):
        created["admin_token"] = create_token(session, "admin", "admin")[1]
    if agent_key:
        if not session.scalar(
            select(AgentKeyRow.id).where(AgentKeyRow.key_hash == hash_secret(agent_key))
        ):
            create_agent_key(session, "default", agent_key)
    elif not session.scalar(select(func.count()).select_from(AgentKeyRow)):
        created["agent_key"] = create_agent_key(session, "default")[1]
    return created
