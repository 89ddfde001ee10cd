"""The HTTP edge: what a request may cost the server before anyone knows who sent it.

A request body is read by nobody until the request is known to be acceptable: an API
request with a body needs a valid token first (401 otherwise, the body left unread), and
every body has a size limit per route (413 from ``Content-Length`` alone, or as soon as a
chunked body passes it). Bodies are small, so the edge reads them whole and hands them on.

Query strings are logged with ``token=`` masked (:class:`HideTokens`). Input that no route
can take is a 422 here, the same on every database: NUL characters in
the path or query (PostgreSQL refuses them in text). And an unexpected error is a 500 that
keeps the connection open, instead of ending it for the client's next requests.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Optional
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from peephole.server.auth import authenticate, bearer_token

__all__ = ["API_BODY_BYTES", "Edge", "hide_tokens_in_logs"]

log = logging.getLogger("peephole.server")

API_PREFIX = "/api/v1/"
API_BODY_BYTES = 128 * 1024  # a probe is at most ~40 KB
OTHER_BODY_BYTES = 1024 * 1024  # the web UI's forms
BODY_LIMITS = [  # (method, path pattern, limit): the routes that take more than the default
    ("PUT", re.compile(r"/api/v1/services/[^/]+/policy"), 512 * 1024),
]


def body_limit(method: str, path: str) -> int:
    for wanted, pattern, limit in BODY_LIMITS:
        if method == wanted and pattern.fullmatch(path):
            return limit
    return API_BODY_BYTES if path.startswith(API_PREFIX) else OTHER_BODY_BYTES


# A refused body is never read: the connection closes after the answer, so the client
# stops sending instead of the server reading it to find the next request.
UNREAD = {"Connection": "close"}


class TooLarge(Exception):
    pass


class HideTokens(logging.Filter):
    """Mask ``token=...`` in log lines: the live stream takes its token in the query string
    (browsers cannot set headers on a WebSocket), and access logs print query strings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "token=" in a for a in record.args
        ):
            record.args = tuple(
                TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")
LOGGERS_WITH_URLS = ("uvicorn.access", "uvicorn.error")


def hide_tokens_in_logs() -> None:
    """Install :class:`HideTokens` on the loggers that print request URLs (once)."""
    for name in LOGGERS_WITH_URLS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideTokens) for f in logger.filters):
            logger.addFilter(HideTokens())


class Edge:
    """ASGI middleware: authenticate before reading bodies, cap them, refuse NULs, and answer
    an unexpected error without closing the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope, receive)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, scope.pop("peephole.receive", receive), tracking_send)
        except Exception:
            if started:
                raise
            log.exception("unexpected error in %s %s", scope["method"], scope["path"])
            await _answer(send, 500, {"detail": "internal error"})

    async def _refusal(
        self, scope: Scope, receive: Receive
    ) -> Optional[tuple[int, dict[str, Any], dict[str, str]]]:
        """Why the request is refused before the app sees it (status, body, headers)."""
        if "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"]):
            return 422, _invalid("NUL characters are not allowed in a path or query"), {}
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not chunked and length in (None, "0"):
            return None
        limit = body_limit(scope["method"], scope["path"])
        too_large = 413, {"detail": f"request body over {limit} bytes"}, UNREAD
        if length is not None and (not length.isdigit() or int(length) > limit):
            return too_large
        if scope["path"].startswith(API_PREFIX):
            try:
                token = bearer_token(headers.get("authorization"))
                principal = await authenticate(scope["app"].state.broker, token)
            except HTTPException as exc:
                return exc.status_code, {"detail": exc.detail}, {**(exc.headers or {}), **UNREAD}
            scope.setdefault("state", {})["principal"] = principal
        try:
            body = await _read(receive, limit)
        except TooLarge:
            return too_large
        scope["peephole.receive"] = _replay(body, receive)
        return None


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: a disconnect, when the client leaves

    return replay


def _invalid(message: str) -> dict[str, Any]:
    return {"detail": [{"type": "value_error", "loc": ["request"], "msg": message}]}


async def _answer(
    send: Send, status: int, body: dict[str, Any], headers: Optional[dict[str, str]] = None
) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
