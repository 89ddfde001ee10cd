"""Starlette and FastAPI: ``ServerErrorMiddleware`` is the outermost layer of every app's
middleware stack; it sends the 500 and re-raises. Its ``__call__`` is wrapped (on the class,
so apps built before the agent started are covered too) to capture what it re-raises.

Enabled when the application imports ``starlette.middleware.errors`` (``import fastapi`` or
creating a Starlette app does).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Optional

from peephole.agent.exception_capture import capture_active

__all__ = ["install", "uninstall"]

_original: Optional[Callable[..., Any]] = None


def install() -> None:
    global _original
    middleware = sys.modules["starlette.middleware.errors"].ServerErrorMiddleware
    if _original is not None:
        return
    original = middleware.__dict__["__call__"]

    @functools.wraps(original)
    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        try:
            await original(self, scope, receive, send)
        except Exception as exc:
            capture_active(exc, "starlette")
            raise

    _original = original
    middleware.__call__ = __call__


def uninstall() -> None:
    global _original
    errors = sys.modules.get("starlette.middleware.errors")
    if errors is not None and _original is not None:
        errors.ServerErrorMiddleware.__call__ = _original
    _original = None
