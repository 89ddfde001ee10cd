"""A closed loopback port is a real unreachable server: both clients say which URL failed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from peephole.client import AsyncClient, Client, ServerUnreachable


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_sync_client(closed_url: str) -> None:
    with Client(closed_url, "t") as client, pytest.raises(ServerUnreachable) as caught:
        client.probes()
    assert caught.value.url == closed_url
    assert (
        str(caught.value) == f"cannot reach the peephole server at {closed_url} "
        "(connection refused)"
    )


def test_sync_stream(closed_url: str) -> None:
    with Client(closed_url, "secret") as client, pytest.raises(ServerUnreachable) as caught:
        client.stream()
    assert "secret" not in str(caught.value)  # the token in the stream URL is not shown
    assert caught.value.url == closed_url


async def test_async_client(closed_url: str) -> None:
    async with AsyncClient(closed_url, "t") as client:
        with pytest.raises(ServerUnreachable, match="connection refused"):
            await client.services()
        with pytest.raises(ServerUnreachable):
            await client.stream()
