"""What every router needs: the broker, and 422 errors that name the field."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from peephole.server.broker import Broker


def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def invalid(location: str, field: str, message: str, value: Any = None) -> NoReturn:
    """Raise the same 422 FastAPI gives for a bad field (``location`` is body or query)."""
    raise RequestValidationError(
        [{"type": "value_error", "loc": (location, field), "msg": message, "input": value}]
    )
