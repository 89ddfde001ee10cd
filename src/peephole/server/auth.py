"""API authentication: ``Authorization: Bearer <token>`` and a minimum role per route.

Failures are 401 (no or unknown token) or 403 (role too low) with a one-line reason.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Coroutine, Optional

from fastapi import HTTPException, Request

from peephole.server.broker import Broker
from peephole.server.store import credentials
from peephole.server.store.credentials import Principal

CHALLENGE = {"WWW-Authenticate": "Bearer"}
CACHE_SECONDS = 30.0  # a known token is looked up again after this long


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "Authorization header must be 'Bearer <token>'", CHALLENGE)
    return token.strip()


async def authenticate(broker: Broker, token: Optional[str]) -> Principal:
    if not token:
        raise HTTPException(
            401, "missing token: send 'Authorization: Bearer <token>'", CHALLENGE
        )
    now = time.monotonic()
    cached = broker.token_cache.get(token)
    if cached is not None and now - cached[1] < CACHE_SECONDS:
        return cached[0]
    principal = await broker.db.read(lambda s: credentials.find_token(s, token))
    if principal is None:
        raise HTTPException(401, "invalid token", CHALLENGE)
    if len(broker.token_cache) > 10_000:
        broker.token_cache.clear()
    broker.token_cache[token] = (principal, now)
    return principal


def require(role: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller, who must have at least ``role``."""

    async def dependency(request: Request) -> Principal:
        token = bearer_token(request.headers.get("authorization"))
        principal = await authenticate(request.app.state.broker, token)
        if not principal.has(role):
            raise HTTPException(403, f"role {principal.role!r} may not do this; needs {role!r}")
        return principal

    return dependency


viewer = require("viewer")
debugger = require("debugger")
admin = require("admin")
