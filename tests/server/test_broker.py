"""The broker's coalescing of probe-status updates for the live stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peephole.server.broker import Broker
from peephole.server.db import Database
from peephole.server.hub import Subscriber
from peephole.server.settings import ServerSettings

pytestmark = pytest.mark.server


async def test_status_arriving_while_publishing_is_published_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServerSettings(data_dir=str(tmp_path))
    db = Database(settings.database)
    broker = Broker(settings, db)
    broker.hub.subscribers.add(Subscriber())
    published: list[list[str]] = []
    publishing, release = asyncio.Event(), asyncio.Event()

    async def slow_publish(probe_ids: list[str]) -> None:
        publishing.set()
        await release.wait()  # a publication in progress until the test lets it end
        published.append(sorted(probe_ids))

    monkeypatch.setattr(broker, "publish_probe_views", slow_publish)
    try:
        broker.status_changed(["a"])
        broker.status_changed(["b"])
        await publishing.wait()
        broker.status_changed(["c"])  # while the first round is being published
        release.set()
        assert broker._flush is not None
        await asyncio.wait_for(broker._flush, 10)  # ends once nothing is left to publish
        assert published == [["a", "b"], ["c"]]
    finally:
        db.close()
