"""One error hierarchy for everything the client can meet, each with a one-line message.

The CLI prints ``str(error)`` as is, so messages are single lines that name what failed.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "InvalidRequest",
    "NotFound",
    "NotPeephole",
    "PeepholeError",
    "ServerUnreachable",
    "error_for",
]


class PeepholeError(Exception):
    """Any failure talking to the peephole server. ``status`` is the HTTP status, if any."""

    keeps_lines = False  # whether lines after the first are kept (a caret under a column)

    def __init__(self, message: str, status: int | None = None) -> None:
        first, newline, rest = message.partition("\n")
        if not self.keeps_lines:
            first, newline, rest = message, "", ""
        super().__init__(" ".join(first.split()) + (newline + rest.rstrip() if rest else ""))
        self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0])


class ServerUnreachable(PeepholeError):
    """No answer from the server: refused, timed out, DNS, TLS."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the peephole server at {url} ({reason})")
        self.url = url
        self.reason = reason


class AuthError(PeepholeError):
    """401 (no or bad token) or 403 (the token's role may not do this)."""

    def __init__(self, status: int, reason: str) -> None:
        prefix = "the server refused the token" if status == 401 else "permission denied"
        super().__init__(f"{prefix}: {reason}", status)
        self.reason = reason


class NotPeephole(PeepholeError):
    """The address answers HTTP, but not the way a peephole server does (another service,
    or a path prefix that is not the server's root)."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(
            f"the address {url} does not answer like a peephole server (HTTP {status})", status
        )
        self.url = url


class NotFound(PeepholeError):
    """404: an unknown probe, event, service or exception group (named in ``resource``)."""

    def __init__(self, reason: str, resource: str | None = None) -> None:
        super().__init__(reason, 404)
        self.resource = resource


class InvalidRequest(PeepholeError):
    """422 (or 400): the server rejected a field of the request. A syntax error keeps its
    two last lines: the text, and a caret under the column."""

    keeps_lines = True

    def __init__(self, reason: str, field: str | None = None, status: int = 422) -> None:
        text = f"invalid {field}: {reason}" if field else f"invalid request: {reason}"
        super().__init__(text, status)
        self.field = field
        self.reason = reason


VALIDATOR_PREFIX = "Value error, "  # pydantic's, before the reason a validator gave


def error_for(status: int, body: Any, url: str, resource: str | None = None) -> PeepholeError:
    """Turn an error response into the matching exception; ``resource`` is what was asked for
    (``"probe"``, ``"event"``...), so a 404 can say what is missing."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if status in (401, 403):
        return AuthError(
            status,
            _text(detail) or ("missing or invalid token" if status == 401 else "insufficient role"),
        )
    if status == 404:
        return NotFound(_text(detail) or f"{resource or 'resource'} not found: {url}", resource)
    if status in (400, 422):
        field, reason = _first_field_error(detail)
        return InvalidRequest(reason, field, status)
    reason = _text(detail) or f"HTTP {status}"
    return PeepholeError(f"the server answered {status} for {url}: {reason}", status)


def _text(detail: Any) -> str:
    if detail is None:
        return ""
    return detail if isinstance(detail, str) else str(detail)


def _first_field_error(detail: Any) -> tuple[str | None, str]:
    """Pick the field and reason from FastAPI's ``[{"loc": [...], "msg": ...}]`` shape."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        reason = str(first.get("msg", "invalid value")).removeprefix(VALIDATOR_PREFIX)
        return (".".join(loc) or None), f"{reason}{more}"
    return None, _text(detail) or "the server rejected the request"
