"""ASGI middleware: exceptions that escape the application are captured.

For any ASGI framework without its own integration::

    from peephole.agent.integrations.asgi import PeepholeMiddleware
    app = PeepholeMiddleware(app)

Starlette and FastAPI are hooked automatically (:mod:`peephole.agent.integrations.starlette`).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from peephole.agent.exception_capture import capture_active

__all__ = ["PeepholeMiddleware"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class PeepholeMiddleware:
    """Wrap an ASGI application; capture what it raises, then let the exception continue."""

    def __init__(self, app: ASGIApp, origin: str = "asgi") -> None:
        self.app = app
        self.origin = origin

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            capture_active(exc, self.origin)
            raise
