"""The sync and async clients: thin carriers of the calls built in :mod:`peephole.client.api`.

Both classes have the same methods with the same arguments; the async ones are coroutines.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from peephole import __version__
from peephole.client import api
from peephole.client.config import Settings, resolve
from peephole.client.errors import PeepholeError
from peephole.client.models import (
    AgentKey,
    AuditEntry,
    Event,
    ExceptionGroup,
    ExceptionGroupDetail,
    Health,
    Instance,
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
from peephole.client.stream import AsyncStream, Stream

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0


class _Base:
    """Settings, headers and stream set-up shared by both clients."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings: Settings = resolve(url, token, environ)
        self.timeout = timeout
        self.verify = verify

    @property
    def url(self) -> str:
        return self.settings.url

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"peephole-client/{__version__}"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

    def _stream_target(
        self, service: str | None, probe_id: str | None, type: str | None
    ) -> tuple[str, ssl.SSLContext | None]:
        url = api.stream_url(self.url, self.settings.token, service, probe_id, type)
        if not url.startswith("wss:"):
            return url, None
        if self.verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif isinstance(self.verify, str):
            context = ssl.create_default_context(cafile=self.verify)
        else:
            context = ssl.create_default_context()
        return url, context

    def _stream_error(self, exc: Exception) -> PeepholeError:
        from websockets.exceptions import InvalidStatus

        if isinstance(exc, InvalidStatus):
            response = exc.response
            return api.stream_refused(response.status_code, bytes(response.body or b""), self.url)
        return api.unreachable(self.url, exc)


class Client(_Base):
    """A blocking client for the peephole REST API.

    ``Client()`` reads the server URL and token from the environment or from the file
    ``peephole login`` wrote; pass ``url``/``token`` to override them. Every method raises a
    :class:`~peephole.client.errors.PeepholeError` subclass on failure.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, verify=verify, environ=environ)
        self._http = httpx.Client(
            base_url=self.url,
            headers=self._headers(),
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: api.Call[T]) -> T:
        """Carry one call to the server and return its parsed result."""
        try:
            response = self._http.request(
                call.method, call.path, params=call.query(), json=call.body
            )
        except httpx.TransportError as exc:
            raise api.unreachable(self.url, exc) from None
        return call.finish(response)

    def health(self) -> Health:
        return self.send(api.health())

    def me(self) -> User:
        return self.send(api.me())

    def services(self) -> list[Service]:
        return self.send(api.services())

    def instances(self, service: str | None = None, include_gone: bool = False) -> list[Instance]:
        return self.send(api.instances(service, include_gone))

    def create_probe(self, probe: NewProbe) -> Probe:
        return self.send(api.create_probe(probe))

    def probes(self, service: str | None = None, state: str | None = None) -> list[Probe]:
        return self.send(api.probes(service, state))

    def probe(self, probe_id: str) -> Probe:
        return self.send(api.probe(probe_id))

    def update_probe(self, probe_id: str, **changes: Any) -> Probe:
        return self.send(api.update_probe(probe_id, changes))

    def enable_probe(self, probe_id: str) -> Probe:
        return self.send(api.enable_probe(probe_id))

    def disable_probe(self, probe_id: str) -> Probe:
        return self.send(api.disable_probe(probe_id))

    def delete_probe(self, probe_id: str) -> None:
        return self.send(api.delete_probe(probe_id))

    def events(self, **filters: Any) -> Page[Event]:
        """One page of events, newest first. Filters: see :func:`peephole.client.api.events`."""
        return self.send(api.events(**filters))

    def event(self, event_id: str) -> Event:
        return self.send(api.event(event_id))

    def exceptions(self, service: str | None = None) -> list[ExceptionGroup]:
        return self.send(api.exceptions(service))

    def exception(self, fingerprint: str) -> ExceptionGroupDetail:
        return self.send(api.exception(fingerprint))

    def source(self, service: str, path: str) -> Source:
        return self.send(api.source(service, path))

    def files(self, service: str) -> list[str]:
        """The source files a live agent of ``service`` has loaded."""
        return self.send(api.files(service))

    def policy(self, service: str) -> Policy:
        return self.send(api.policy(service))

    def set_policy(self, service: str, policy: dict[str, Any]) -> Policy:
        return self.send(api.set_policy(service, policy))

    def audit(self, limit: int | None = None, probe_id: str | None = None) -> list[AuditEntry]:
        return self.send(api.audit(limit, probe_id))

    def create_token(self, name: str, role: str, expires_seconds: float | None = None) -> NewToken:
        return self.send(api.create_token(name, role, expires_seconds))

    def tokens(self) -> list[Token]:
        return self.send(api.tokens())

    def revoke_token(self, token_id: int) -> Token:
        return self.send(api.revoke_token(token_id))

    def create_agent_key(
        self, name: str, expires_seconds: float | None = None, services: list[str] | None = None
    ) -> NewAgentKey:
        return self.send(api.create_agent_key(name, expires_seconds, services))

    def agent_keys(self) -> list[AgentKey]:
        return self.send(api.agent_keys())

    def revoke_agent_key(self, key_id: int) -> AgentKey:
        return self.send(api.revoke_agent_key(key_id))

    def stream(
        self, service: str | None = None, probe_id: str | None = None, type: str | None = None
    ) -> Stream:
        """Open the live stream of events and probe updates (iterate it; close it after)."""
        from websockets.sync.client import connect

        url, context = self._stream_target(service, probe_id, type)
        try:
            connection = connect(
                url, ssl=context, open_timeout=self.timeout, additional_headers=self._headers()
            )
        except Exception as exc:
            raise self._stream_error(exc) from None
        connection.__enter__()  # Stream owns its lifetime (websockets 17 warns otherwise)
        return Stream(connection, self.url)


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: same methods, awaited."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, verify=verify, environ=environ)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=self._headers(),
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, call: api.Call[T]) -> T:
        """Carry one call to the server and return its parsed result."""
        try:
            response = await self._http.request(
                call.method, call.path, params=call.query(), json=call.body
            )
        except httpx.TransportError as exc:
            raise api.unreachable(self.url, exc) from None
        return call.finish(response)

    async def health(self) -> Health:
        return await self.send(api.health())

    async def me(self) -> User:
        return await self.send(api.me())

    async def services(self) -> list[Service]:
        return await self.send(api.services())

    async def instances(
        self, service: str | None = None, include_gone: bool = False
    ) -> list[Instance]:
        return await self.send(api.instances(service, include_gone))

    async def create_probe(self, probe: NewProbe) -> Probe:
        return await self.send(api.create_probe(probe))

    async def probes(self, service: str | None = None, state: str | None = None) -> list[Probe]:
        return await self.send(api.probes(service, state))

    async def probe(self, probe_id: str) -> Probe:
        return await self.send(api.probe(probe_id))

    async def update_probe(self, probe_id: str, **changes: Any) -> Probe:
        return await self.send(api.update_probe(probe_id, changes))

    async def enable_probe(self, probe_id: str) -> Probe:
        return await self.send(api.enable_probe(probe_id))

    async def disable_probe(self, probe_id: str) -> Probe:
        return await self.send(api.disable_probe(probe_id))

    async def delete_probe(self, probe_id: str) -> None:
        return await self.send(api.delete_probe(probe_id))

    async def events(self, **filters: Any) -> Page[Event]:
        """One page of events, newest first. Filters: see :func:`peephole.client.api.events`."""
        return await self.send(api.events(**filters))

    async def event(self, event_id: str) -> Event:
        return await self.send(api.event(event_id))

    async def exceptions(self, service: str | None = None) -> list[ExceptionGroup]:
        return await self.send(api.exceptions(service))

    async def exception(self, fingerprint: str) -> ExceptionGroupDetail:
        return await self.send(api.exception(fingerprint))

    async def source(self, service: str, path: str) -> Source:
        return await self.send(api.source(service, path))

    async def files(self, service: str) -> list[str]:
        """The source files a live agent of ``service`` has loaded."""
        return await self.send(api.files(service))

    async def policy(self, service: str) -> Policy:
        return await self.send(api.policy(service))

    async def set_policy(self, service: str, policy: dict[str, Any]) -> Policy:
        return await self.send(api.set_policy(service, policy))

    async def audit(
        self, limit: int | None = None, probe_id: str | None = None
    ) -> list[AuditEntry]:
        return await self.send(api.audit(limit, probe_id))

    async def create_token(
        self, name: str, role: str, expires_seconds: float | None = None
    ) -> NewToken:
        return await self.send(api.create_token(name, role, expires_seconds))

    async def tokens(self) -> list[Token]:
        return await self.send(api.tokens())

    async def revoke_token(self, token_id: int) -> Token:
        return await self.send(api.revoke_token(token_id))

    async def create_agent_key(
        self, name: str, expires_seconds: float | None = None, services: list[str] | None = None
    ) -> NewAgentKey:
        return await self.send(api.create_agent_key(name, expires_seconds, services))

    async def agent_keys(self) -> list[AgentKey]:
        return await self.send(api.agent_keys())

    async def revoke_agent_key(self, key_id: int) -> AgentKey:
        return await self.send(api.revoke_agent_key(key_id))

    async def stream(
        self, service: str | None = None, probe_id: str | None = None, type: str | None = None
    ) -> AsyncStream:
        """Open the live stream of events and probe updates (iterate it; close it after)."""
        from websockets.asyncio.client import connect

        url, context = self._stream_target(service, probe_id, type)
        try:
            connection = await connect(
                url, ssl=context, open_timeout=self.timeout, additional_headers=self._headers()
            )
        except Exception as exc:
            raise self._stream_error(exc) from None
        return AsyncStream(connection, self.url)
