"""Threads racing the agent, re-entry, and leaks over many place/remove cycles."""

from __future__ import annotations

import gc
import logging
import threading
import tracemalloc
from typing import Callable, List

from targets import shop

from conftest import SHOP_PATH, Collector, logpoint, shop_line, tracepoint
from coverage_pause import uncovered
from peephole.agent.core import Agent


def test_eight_threads_hit_a_probe_while_it_is_removed(agent: Agent, collector: Collector) -> None:
    original = shop.hot.__code__
    errors: List[BaseException] = []
    results: List[int] = []
    go = threading.Event()

    def worker() -> None:
        go.wait()
        try:
            for _ in range(300):
                results.append(shop.hot(20))
        except BaseException as exc:  # the test fails on anything escaping
            errors.append(exc)

    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("hot"), condition="i == 3"))
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    go.set()
    for _ in range(20):
        agent.remove_probe("p")
        agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("hot"), condition="i == 3"))
    agent.remove_probe("p")
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results == [190] * 2400
    assert shop.hot.__code__ is original
    assert agent.backend is not None and agent.backend.armed_codes() == []


def test_the_hit_limit_is_exact_under_eight_threads(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=25))

    def worker() -> None:
        cart = shop.Cart("t")
        for price in range(200):
            cart.add(float(price))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    agent.flush()
    assert len(collector.of("p")) == 25


def test_a_probe_reached_from_a_probe_does_not_re_enter(agent: Agent, collector: Collector) -> None:
    """A logpoint writes to a logger whose handler runs probed code: one event, no loop."""

    class CartHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shop.Cart("handler").add(0.0)

    logger = logging.getLogger("tests.reentry")
    handler = CartHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        agent.set_probe(
            logpoint("log", SHOP_PATH, shop_line("method"), "add {price}", logger=logger.name)
        )
        shop.Cart("app").add(1.0)
        handler_calls = [shop.Cart("app").add(2.0)]
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    agent.flush()
    assert [e["message"] for e in collector.of("log")] == ["add 1.0", "add 2.0"]
    assert handler_calls == [1]


@uncovered  # coverage keeps records of the code objects it sees
def test_a_thousand_place_and_remove_cycles_leak_nothing(agent: Agent) -> None:
    original = shop.make_discount.__code__
    line = shop_line("closure")

    def cycle(n: int) -> None:
        agent.set_probe(tracepoint(f"p{n}", SHOP_PATH, line, condition="amount > 1e9"))
        shop.make_discount(0.5)(10.0)
        agent.remove_probe(f"p{n}")

    for n in range(50):  # warm caches (linecache, interned strings, bytecode tables)
        cycle(n)
    gc.collect()
    objects_before = len(gc.get_objects())
    for n in range(1000):
        cycle(n)
    gc.collect()
    assert len(gc.get_objects()) - objects_before < 50
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(100):
            cycle(n)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = [s for s in after.compare_to(before, "lineno") if "peephole" in str(s.traceback)]
    assert sum(stat.size_diff for stat in grown) < 16 * 1024, grown[:10]
    assert shop.make_discount.__code__ is original
    assert agent.statuses() == []


def test_nothing_escapes_from_a_probe_whose_capture_fails(
    agent: Agent, collector: Collector
) -> None:
    class Hostile:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("no")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    hostile = Hostile()
    agent.set_probe(
        tracepoint("p", SHOP_PATH, shop_line("method"), watches=["price.real", "self.owner"])
    )
    cart = shop.Cart("ann")
    cart.owner = hostile  # type: ignore[assignment]
    assert cart.add(1.0) == 1
    agent.flush()
    assert len(collector.of("p")) == 1


Make = Callable[..., Agent]
