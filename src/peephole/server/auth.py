"""API authentication: ``Authorization: Bearer <token>`` and a minimum role per route.

Failures are 401 (no, unknown, revoked or expired token) or 403 (role too low) with a
one-line reason. Tokens are looked up on every request (one indexed read): a revoked token
stops working at once, on every server sharing the database.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Optional

from fastapi import HTTPException, Request

from peephole.server.broker import Broker
from peephole.server.store import credentials
from peephole.server.store.credentials import Principal

__all__ = ["admin", "authenticate", "bearer_token", "debugger", "viewer"]

CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Authorization header must be 'Bearer <token>'", CHALLENGE)
    return token.strip()


async def authenticate(broker: Broker, token: Optional[str]) -> Principal:
    if not token:
        raise HTTPException(401, "missing token: send 'Authorization: Bearer <token>'", CHALLENGE)
    principal = await broker.db.read(lambda s: credentials.find_token(s, token))
    if principal is None:
        raise HTTPException(401, "invalid token", CHALLENGE)
    return principal


def require(role: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller, who must have at least ``role``."""

    async def dependency(request: Request) -> Principal:
        principal: Optional[Principal] = getattr(request.state, "principal", None)
        if principal is None:  # a request with a body was authenticated at the edge
            token = bearer_token(request.headers.get("authorization"))
            principal = await authenticate(request.app.state.broker, token)
        if not principal.has(role):
            raise HTTPException(403, f"role {principal.role!r} may not do this; needs {role!r}")
        return principal

    return dependency


viewer = require("viewer")
debugger = require("debugger")
admin = require("admin")
