"""The live stream takes its token in the query string; the access log never shows it."""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest
from websockets.asyncio.client import connect

from e2e.server_process import ADMIN_TOKEN, ServerProcess
from waiting import wait_until

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_the_token_in_a_stream_url_is_not_logged(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()

    async def open_stream() -> None:
        async with connect(f"{server.ws_url}/api/v1/stream?token={ADMIN_TOKEN}&type=log"):
            pass

    asyncio.run(open_stream())
    wait_until(
        lambda: "/api/v1/stream?token=***&type=log" in server.log(),
        10,
        f"the stream was not logged:\n{server.log()[-2000:]}",
    )
    assert ADMIN_TOKEN not in server.log()
