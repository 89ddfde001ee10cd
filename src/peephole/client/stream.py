"""The live stream (WS /api/v1/stream): events and probe updates as they happen.

A stream is connected when the client returns it, so a caller can open it, then read
history over REST, and miss nothing in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from peephole.client import api
from peephole.client.errors import ServerUnreachable
from peephole.client.models import Event, Probe

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection as AsyncConnection
    from websockets.sync.client import ClientConnection

__all__ = ["AsyncStream", "Stream"]


class Stream:
    """Iterate over live :class:`Event` and :class:`Probe` updates; close when done."""

    def __init__(self, connection: ClientConnection, url: str) -> None:
        self._connection = connection
        self.url = url

    def __iter__(self) -> Iterator[Event | Probe]:
        from websockets.exceptions import ConnectionClosedError

        try:
            for text in self._connection:
                item = api.stream_message(text)
                if item is not None:
                    yield item
        except ConnectionClosedError as exc:
            raise ServerUnreachable(self.url, f"the live stream closed: {exc}") from None

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()


class AsyncStream:
    """The asyncio twin of :class:`Stream`."""

    def __init__(self, connection: AsyncConnection, url: str) -> None:
        self._connection = connection
        self.url = url

    async def __aiter__(self) -> AsyncIterator[Event | Probe]:
        from websockets.exceptions import ConnectionClosedError

        try:
            async for text in self._connection:
                item = api.stream_message(text)
                if item is not None:
                    yield item
        except ConnectionClosedError as exc:
            raise ServerUnreachable(self.url, f"the live stream closed: {exc}") from None

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._connection.close()
