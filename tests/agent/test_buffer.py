"""The bounded event buffer and its delivery thread."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

from conftest import Collector, wait_for
from peephole.agent.delivery.buffer import MAX_BATCH_EVENTS, EventBuffer


def _event(n: int) -> Dict[str, Any]:
    return {"n": n}


def test_over_budget_the_oldest_events_go_and_are_counted() -> None:
    dropped: List[Dict[str, Any]] = []
    buffer = EventBuffer(max_bytes=1000, on_drop=dropped.append)
    for n in range(15):
        buffer.put(_event(n), 100)
    assert len(buffer) == 10 and buffer.bytes == 1000
    assert buffer.dropped == 5
    assert [e["n"] for e in dropped] == [0, 1, 2, 3, 4]


def test_delivery_in_order_and_in_batches() -> None:
    collector = Collector()
    buffer = EventBuffer(max_bytes=10_000_000, sink=collector)
    for n in range(MAX_BATCH_EVENTS * 2 + 10):
        buffer.put(_event(n), 10)
    buffer.start()
    assert buffer.flush(5)
    assert [e["n"] for e in collector.events] == list(range(MAX_BATCH_EVENTS * 2 + 10))
    assert collector.batches >= 3
    buffer.stop()


def test_a_refusing_sink_keeps_the_events_for_a_retry() -> None:
    collector = Collector()
    collector.accept = False
    buffer = EventBuffer(max_bytes=10_000, sink=collector)
    buffer.start()
    for n in range(5):
        buffer.put(_event(n), 10)
    assert buffer.flush(0.3) is False
    assert len(buffer) + buffer._in_flight == 5
    collector.accept = True
    assert buffer.flush(10)
    assert [e["n"] for e in collector.events] == [0, 1, 2, 3, 4]
    assert buffer.dropped == 0
    buffer.stop()


def test_a_raising_sink_is_a_refusal_not_a_crash() -> None:
    calls: List[int] = []

    def sink(batch: List[Dict[str, Any]]) -> bool:
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionError("server down")
        return True

    buffer = EventBuffer(max_bytes=10_000, sink=sink)
    buffer.start()
    buffer.put(_event(1), 10)
    assert buffer.flush(10)
    assert calls == [1, 1]
    buffer.stop()


def test_put_never_blocks_on_a_slow_sink() -> None:
    """All the puts return while the sink is still held: had one waited for the sink, the
    sink would have returned first (it gives up waiting after 60 s)."""
    release = threading.Event()
    returned = threading.Event()

    def slow(batch: List[Dict[str, Any]]) -> bool:
        release.wait(60)
        returned.set()
        return True

    buffer = EventBuffer(max_bytes=1000, sink=slow)
    buffer.start()
    buffer.put(_event(0), 10)
    assert wait_for(lambda: buffer._in_flight == 1)
    for n in range(1000):
        buffer.put(_event(n), 10)
    assert not returned.is_set()
    assert buffer.dropped == 1000 - 100
    release.set()
    assert buffer.flush(5)
    buffer.stop()


def test_without_a_sink_events_wait_and_flush_says_so() -> None:
    buffer = EventBuffer(max_bytes=1000)
    buffer.put(_event(1), 10)
    assert buffer.flush(0.1) is False
    assert len(buffer) == 1


def test_reset_after_fork_forgets_the_parents_events() -> None:
    buffer = EventBuffer(max_bytes=1000)
    buffer.put(_event(1), 10)
    buffer.reset_after_fork()
    assert len(buffer) == 0 and buffer.bytes == 0 and buffer.dropped == 0
