"""The agent under a patched clock (freezegun and the like): it keeps its own references to
the real time functions, so rates, the CPU budget and event times stay right."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Tuple

from targets import shop

from conftest import SHOP_PATH, Collector, logpoint, shop_line, tracepoint, wait_for
from peephole.agent.core import Agent
from peephole.agent.exception_capture import ExceptionCapture

FROZEN = 946_684_800.0  # 2000-01-01, the date events were stamped with
NAMES = ("time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns")
# Modules freezegun leaves alone by default (and this test's own runner).
IGNORED = ("threading", "queue", "multiprocessing", "_pytest", "pytest", "pluggy", "time")


@contextmanager
def frozen_clock() -> Iterator[None]:
    """What ``freezegun.freeze_time`` does: replace the clock functions in ``time`` and every
    module attribute that holds one of them with functions returning a date in 2000."""
    fakes: Dict[int, Callable[[], Any]] = {}
    for name in NAMES:
        real = getattr(time, name)
        fake_value = int(FROZEN * 1e9) if name.endswith("_ns") else FROZEN
        fakes[id(real)] = lambda value=fake_value: value  # type: ignore[misc]
    changes: List[Tuple[Any, str, Any]] = [(time, name, getattr(time, name)) for name in NAMES]
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.startswith(IGNORED):
            continue
        for attr, value in list(getattr(module, "__dict__", {}).items()):
            if id(value) in fakes:
                changes.append((module, attr, value))
    for owner, attr, value in changes:
        setattr(owner, attr, fakes[id(value)])
    try:
        yield
    finally:
        for owner, attr, value in changes:
            setattr(owner, attr, value)


def _hammer(count: int) -> None:
    cart = shop.Cart("ann")
    for price in range(count):
        cart.add(float(price))


def test_rates_and_event_times_ignore_a_frozen_clock(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(cpu_budget=1.0, log_rate=50.0)
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "p={price}"))
    before = time.time()
    with frozen_clock():
        assert time.time() == FROZEN
        _hammer(200)
    assert agent.flush()
    frozen_events = list(collector.of("log"))
    assert 50 <= len(frozen_events) <= 60  # the burst, and what real time refilled
    assert all(before - 1 <= e["time"] <= time.time() + 1 for e in frozen_events)
    # Once the application's clock is back, the probe captures again within its rate.

    def captures_again() -> bool:
        _hammer(1)
        return len(collector.of("log")) > len(frozen_events)

    assert wait_for(captures_again)


def test_the_cpu_budget_times_probes_with_the_real_clock(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(snapshot_rate=1000.0, snapshot_process_rate=1000.0, cpu_budget=1e-9)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=100))
    with frozen_clock():
        _hammer(20)
    assert agent.flush()
    status = agent.status("p")
    assert status is not None and status.time_ns > 0  # a frozen timer would say 0
    assert len(collector.of("p")) == 1  # so the budget (1 ns) is spent by the first
    assert status.drops == 19


def test_exception_events_keep_the_real_time(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent()
    capture = ExceptionCapture(agent)
    capture.install()
    before = time.time()
    try:
        with frozen_clock():
            for _ in range(2):  # a snapshot, then a count
                try:
                    raise ValueError("frozen")
                except ValueError:
                    logging.getLogger("tests.frozen").exception("failed")
    finally:
        capture.uninstall()
    assert agent.flush()
    events = [e for e in collector.events if e["type"] == "exception"]
    assert [e["count"] for e in events] == [1, 1]
    for event in events:
        for name in ("time", "first_time", "last_time"):
            assert before - 1 <= event[name] <= time.time() + 1, (name, event[name])
