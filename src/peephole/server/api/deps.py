"""What every router needs: the broker, and 422 errors that name the field."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, Optional

from fastapi import Path, Query, Request
from fastapi.exceptions import RequestValidationError

from peephole.server.broker import Broker

__all__ = [
    "EventId",
    "Fingerprint",
    "FingerprintFilter",
    "InstanceFilter",
    "ProbeFilter",
    "ProbeId",
    "ServiceFilter",
    "ServiceName",
    "get_broker",
    "invalid",
]

# Path and query parameters, each as long as the column it is compared with (longer values
# are 422s, not database errors that differ between SQLite and PostgreSQL).
ServiceName = Annotated[str, Path(max_length=200)]
ProbeId = Annotated[str, Path(max_length=64)]
EventId = Annotated[str, Path(max_length=64)]
Fingerprint = Annotated[str, Path(max_length=128)]
ServiceFilter = Annotated[Optional[str], Query(max_length=200)]
ProbeFilter = Annotated[Optional[str], Query(max_length=64)]
InstanceFilter = Annotated[Optional[str], Query(max_length=64)]
FingerprintFilter = Annotated[Optional[str], Query(max_length=128)]


def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def invalid(location: str, field: str, message: str, value: Any = None) -> NoReturn:
    """Raise the same 422 FastAPI gives for a bad field (``location`` is body or query)."""
    raise RequestValidationError(
        [{"type": "value_error", "loc": (location, field), "msg": message, "input": value}]
    )
