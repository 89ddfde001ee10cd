"""Who is signed in to the web UI, and the checks every page and form goes through.

The session cookie holds the person's user token (HttpOnly, so page scripts cannot read it;
SameSite=Strict, so other sites cannot send it). It is checked exactly as a REST request's
``Authorization`` header is (``peephole.server.auth.authenticate``): a revoked token signs
the person out at once, on every server process, with no session table to share.

Each form carries a CSRF token derived from the session token with an HMAC, so it is
stateless as well; the sign-in form, which has no session yet, uses a random value in a
short-lived cookie and the same value in the form (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from fastapi import HTTPException, Request
from fastapi.responses import Response

from peephole.server.auth import authenticate
from peephole.server.broker import Broker
from peephole.server.store.credentials import Principal

__all__ = [
    "SignInNeeded",
    "Viewer",
    "check_csrf",
    "csrf_for",
    "end_session",
    "login_nonce_ok",
    "new_login_nonce",
    "remember_login_nonce",
    "require_role",
    "signed_in",
    "start_session",
]

SESSION_COOKIE = "peephole_session"
LOGIN_COOKIE = "peephole_login"
SESSION_SECONDS = 12 * 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInNeeded(Exception):
    """Raised by a page when nobody (or a revoked token) is signed in: go to the form."""


@dataclass
class Viewer:
    """The signed-in person as pages see them."""

    principal: Principal
    csrf: str

    @property
    def can_debug(self) -> bool:
        return self.principal.has("debugger")

    @property
    def is_admin(self) -> bool:
        return self.principal.has("admin")


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"peephole-ui-csrf", hashlib.sha256).hexdigest()


async def signed_in(request: Request) -> Viewer:
    """A FastAPI dependency for pages: the signed-in person, else :class:`SignInNeeded`."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeeded()
    broker: Broker = request.app.state.broker
    try:
        principal = await authenticate(broker, token)
    except HTTPException:
        raise SignInNeeded() from None
    return Viewer(principal, csrf_for(token))


def check_csrf(request: Request, viewer: Viewer, sent: Optional[str]) -> None:
    """Refuse a state-changing request whose CSRF token (form field or header) is wrong."""
    given = sent or request.headers.get(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), viewer.csrf.encode()):
        raise HTTPException(403, "the form is stale or came from another site: reload the page")


def require_role(viewer: Viewer, role: str) -> None:
    if not viewer.principal.has(role):
        raise HTTPException(403, f"role {viewer.principal.role!r} may not do this; needs {role!r}")


def start_session(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def remember_login_nonce(response: Response, nonce: str, secure: bool) -> None:
    """The sign-in form's CSRF value, also in a cookie (double submit)."""
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def login_nonce_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(LOGIN_COOKIE) or ""
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())
