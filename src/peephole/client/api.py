"""The REST API as data: one function per endpoint builds a :class:`Call` saying what to send
and how to read the answer. :class:`~peephole.client.Client` and
:class:`~peephole.client.AsyncClient` only carry calls over HTTP, so the two share every
request and every parser.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

from peephole import protocol
from peephole.client.errors import (
    InvalidRequest,
    NotPeephole,
    PeepholeError,
    ServerUnreachable,
    error_for,
)
from peephole.client.models import (
    AgentKey,
    AuditEntry,
    Event,
    ExceptionGroup,
    ExceptionGroupDetail,
    Files,
    Health,
    Instance,
    Model,
    NewAgentKey,
    NewProbe,
    NewToken,
    Page,
    Policy,
    Probe,
    Service,
    Source,
    Token,
    User,
)

__all__ = [
    "Call",
    "agent_keys",
    "audit",
    "create_agent_key",
    "create_probe",
    "create_token",
    "delete_probe",
    "disable_probe",
    "enable_probe",
    "event",
    "events",
    "exception",
    "exceptions",
    "files",
    "health",
    "instances",
    "me",
    "policy",
    "probe",
    "probes",
    "revoke_agent_key",
    "revoke_token",
    "services",
    "set_policy",
    "source",
    "stream_message",
    "stream_refused",
    "stream_url",
    "tokens",
    "unreachable",
    "update_probe",
]

T = TypeVar("T")
M = TypeVar("M", bound=Model)
PREFIX = "/api/v1"
STREAM_PATH = f"{PREFIX}/stream"
# What update_probe may send: the probe's editable fields, and a new expiry.
PROBE_CHANGES = frozenset((*protocol.EDITABLE_FIELDS, "expire_seconds"))


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the function that turns its JSON answer into a result."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    resource: str | None = None  # what a 404 means is missing: "probe", "event"...

    def query(self) -> dict[str, Any]:
        """The query parameters that are set (``None`` means "not given")."""
        return {k: _query_value(v) for k, v in self.params.items() if v is not None}

    def finish(self, response: httpx.Response) -> T:
        """Check the status and parse the body, raising the matching error."""
        body = _json(response)
        if response.status_code >= 400 and not _answers_like_peephole(response, body):
            raise NotPeephole(str(response.request.url), response.status_code)
        if response.status_code >= 400:
            raise error_for(response.status_code, body, str(response.request.url), self.resource)
        return self.parse(body)


def unreachable(url: str, exc: BaseException) -> ServerUnreachable:
    """Name why a transport failed, from the root cause, without the traceback's noise."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return ServerUnreachable(url, "connection refused")
        if isinstance(error, socket.gaierror):
            return ServerUnreachable(url, "unknown host")
        if isinstance(error, ssl.SSLError):
            return ServerUnreachable(url, f"TLS error: {error.reason or error}")
        if isinstance(error, (httpx.TimeoutException, TimeoutError)):
            return ServerUnreachable(url, "timed out")
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ServerUnreachable(url, "connection refused" if "refused" in text.lower() else text)


# --- endpoints ------------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", f"{PREFIX}/health", Health.from_dict)


def me() -> Call[User]:
    return Call("GET", f"{PREFIX}/me", User.from_dict)


def services() -> Call[list[Service]]:
    return Call("GET", f"{PREFIX}/services", _list_of(Service.from_dict))


def instances(service: str | None = None, include_gone: bool = False) -> Call[list[Instance]]:
    params = {"service": service, "include_gone": include_gone or None}
    return Call("GET", f"{PREFIX}/instances", _list_of(Instance.from_dict), params)


def create_probe(probe: NewProbe) -> Call[Probe]:
    return Call("POST", f"{PREFIX}/probes", Probe.from_dict, body=probe.to_request())


def probes(service: str | None = None, state: str | None = None) -> Call[list[Probe]]:
    params = {"service": service, "state": state}
    return Call("GET", f"{PREFIX}/probes", _list_of(Probe.from_dict), params)


def probe(probe_id: str) -> Call[Probe]:
    return Call("GET", f"{PREFIX}/probes/{_segment(probe_id)}", Probe.from_dict, resource="probe")


def update_probe(probe_id: str, changes: dict[str, Any]) -> Call[Probe]:
    unknown = sorted(set(changes) - PROBE_CHANGES)
    if unknown:
        raise InvalidRequest(
            f"cannot be changed (allowed: {', '.join(sorted(PROBE_CHANGES))})", unknown[0]
        )
    path = f"{PREFIX}/probes/{_segment(probe_id)}"
    return Call("PATCH", path, Probe.from_dict, body=dict(changes), resource="probe")


def enable_probe(probe_id: str) -> Call[Probe]:
    path = f"{PREFIX}/probes/{_segment(probe_id)}/enable"
    return Call("POST", path, Probe.from_dict, resource="probe")


def disable_probe(probe_id: str) -> Call[Probe]:
    path = f"{PREFIX}/probes/{_segment(probe_id)}/disable"
    return Call("POST", path, Probe.from_dict, resource="probe")


def delete_probe(probe_id: str) -> Call[None]:
    return Call("DELETE", f"{PREFIX}/probes/{_segment(probe_id)}", _nothing, resource="probe")


def events(
    type: str | None = None,
    probe_id: str | None = None,
    service: str | None = None,
    instance_id: str | None = None,
    fingerprint: str | None = None,
    since: float | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Event]]:
    params = {
        "type": type,
        "probe_id": probe_id,
        "service": service,
        "instance_id": instance_id,
        "fingerprint": fingerprint,
        "since": since,
        "limit": limit,
        "cursor": cursor,
    }
    return Call("GET", f"{PREFIX}/events", _event_page, params)


def event(event_id: str) -> Call[Event]:
    return Call("GET", f"{PREFIX}/events/{_segment(event_id)}", Event.from_dict, resource="event")


def exceptions(service: str | None = None) -> Call[list[ExceptionGroup]]:
    params = {"service": service}
    return Call("GET", f"{PREFIX}/exceptions", _list_of(ExceptionGroup.from_dict), params)


def exception(fingerprint: str) -> Call[ExceptionGroupDetail]:
    path = f"{PREFIX}/exceptions/{_segment(fingerprint)}"
    return Call("GET", path, ExceptionGroupDetail.from_dict, resource="exception")


def source(service: str, path: str) -> Call[Source]:
    url = f"{PREFIX}/services/{_segment(service)}/source"
    return Call("GET", url, Source.from_dict, {"path": path}, resource="service")


def files(service: str) -> Call[list[str]]:
    url = f"{PREFIX}/services/{_segment(service)}/files"
    return Call("GET", url, _files, resource="service")


def policy(service: str) -> Call[Policy]:
    url = f"{PREFIX}/services/{_segment(service)}/policy"
    return Call("GET", url, _model(Policy), resource="service")


def set_policy(service: str, policy: dict[str, Any]) -> Call[Policy]:
    url = f"{PREFIX}/services/{_segment(service)}/policy"
    return Call("PUT", url, _model(Policy), body=dict(policy), resource="service")


def audit(limit: int | None = None, probe_id: str | None = None) -> Call[list[AuditEntry]]:
    params = {"limit": limit, "probe_id": probe_id}
    return Call("GET", f"{PREFIX}/audit", _list_of(AuditEntry.from_dict), params)


def create_token(name: str, role: str, expires_seconds: float | None = None) -> Call[NewToken]:
    body = {"name": name, "role": role, "expires_seconds": expires_seconds}
    return Call("POST", f"{PREFIX}/tokens", NewToken.from_dict, body=body)


def tokens() -> Call[list[Token]]:
    return Call("GET", f"{PREFIX}/tokens", _list_of(Token.from_dict))


def revoke_token(token_id: int) -> Call[Token]:
    """Revoke a user token by id: at once, on every server; its live streams are closed."""
    return Call(
        "POST", f"{PREFIX}/tokens/{int(token_id)}/revoke", Token.from_dict, resource="token"
    )


def agent_keys() -> Call[list[AgentKey]]:
    return Call("GET", f"{PREFIX}/agent-keys", _list_of(AgentKey.from_dict))


def revoke_agent_key(key_id: int) -> Call[AgentKey]:
    """Revoke an agent key by id: agents connected with it are disconnected."""
    return Call(
        "POST",
        f"{PREFIX}/agent-keys/{int(key_id)}/revoke",
        AgentKey.from_dict,
        resource="agent key",
    )


def create_agent_key(
    name: str, expires_seconds: float | None = None, services: list[str] | None = None
) -> Call[NewAgentKey]:
    body = {"name": name, "expires_seconds": expires_seconds, "services": services}
    return Call("POST", f"{PREFIX}/agent-keys", NewAgentKey.from_dict, body=body)


# --- the live stream ------------------------------------------------------------------------


def stream_url(
    base_url: str,
    token: str | None,
    service: str | None = None,
    probe_id: str | None = None,
    type: str | None = None,
) -> str:
    """The WebSocket URL of the live stream (``http`` becomes ``ws``, ``https`` ``wss``)."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    params = {"token": token, "service": service, "probe_id": probe_id, "type": type}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    path = parts.path.rstrip("/") + STREAM_PATH
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def stream_message(text: str | bytes) -> Event | Probe | None:
    """Parse one stream message: an event, a probe update, or ``None`` for anything else."""
    try:
        message = json.loads(text)
    except ValueError:
        raise PeepholeError("the live stream sent a message that is not JSON") from None
    if not isinstance(message, dict):
        return None
    if message.get("type") == "event" and isinstance(message.get("event"), dict):
        return Event.from_dict(message["event"])
    if message.get("type") == "probe" and isinstance(message.get("probe"), dict):
        return Probe.from_dict(message["probe"])
    return None


def stream_refused(status: int, body: bytes, url: str) -> PeepholeError:
    """The error for a stream handshake the server answered with an HTTP error."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    return error_for(status, data, url)


# --- parsing helpers ------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        if response.status_code >= 400:
            return {"detail": response.text.strip().splitlines()[0] if response.text else ""}
        raise NotPeephole(str(response.request.url), response.status_code) from None


def _answers_like_peephole(response: httpx.Response, body: Any) -> bool:
    """Whether an error came from a peephole server: JSON with a ``detail``, and not the
    framework's answer for a route that does not exist (a wrong URL or path prefix)."""
    if "json" not in response.headers.get("content-type", ""):
        return False
    if not isinstance(body, dict) or "detail" not in body:
        return False
    return body["detail"] not in ("Not Found", "Method Not Allowed")


def _list_of(parse: Callable[[dict[str, Any]], T]) -> Callable[[Any], list[T]]:
    def parse_list(body: Any) -> list[T]:
        if not isinstance(body, list):
            raise PeepholeError(f"expected a JSON list from the server, got {type(body).__name__}")
        return [parse(item) for item in body]

    return parse_list


def _event_page(body: Any) -> Page[Event]:
    if not isinstance(body, dict):
        raise PeepholeError("expected an object with 'events' from the server")
    items = [Event.from_dict(e) for e in body.get("events") or ()]
    return Page(items, body.get("next_cursor"), raw=body)


def _model(model: type[M]) -> Callable[[Any], M]:
    """A parser of one JSON object into ``model``."""

    def parse(body: Any) -> M:
        return model.from_dict(_object(body))

    return parse


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise PeepholeError(f"expected a JSON object from the server, got {type(body).__name__}")
    return body


def _files(body: Any) -> list[str]:
    return [str(f) for f in Files.from_dict(_object(body)).files or ()]


def _nothing(body: Any) -> None:
    return None


def _segment(value: str) -> str:
    """Quote an id for use as one path segment, so ``a/b`` cannot reach another route."""
    return quote(value, safe="")


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
