"""Rates per probe and per process, the CPU budget, and the defaults of the design brief.

Time is a :class:`ManualClock` the tests move: no test sleeps to let a limit recover."""

from __future__ import annotations

from typing import Callable

from manual_clock import ManualClock
from targets import shop

from conftest import SHOP_PATH, Collector, logpoint, shop_line, state_of, tracepoint, wait_for
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.ratelimit import CpuBudget, TokenBucket
from peephole.protocol import ACTIVE, DONE, THROTTLED

SECOND = 1_000_000_000


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(5, clock=clock)
    assert [bucket.take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.advance(0.25)
    assert bucket.take() is True
    assert bucket.take() is False


def test_token_bucket_is_not_put_in_debt_by_a_clock_going_back() -> None:
    clock = ManualClock()
    clock.advance(10**9)  # a clock frozen in the future...
    bucket = TokenBucket(5, clock=clock)
    clock.now_ns = 0  # ...then the real one again
    assert bucket.take() is True
    clock.advance(1.0)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_cpu_budget_over_a_sliding_second() -> None:
    clock = ManualClock()
    budget = CpuBudget(0.01, clock)  # 10 ms per second
    start = clock.now_ns
    budget.add(5_000_000, start)
    assert budget.over is False
    budget.add(6_000_000, start + 1000)
    assert budget.over is True
    # Half a second into the next window, half of the previous spend still counts: no add()
    # (a hit refused by the budget spends nothing), the budget looks at the clock itself.
    clock.advance(0.25)
    assert budget.still_over() is True
    clock.advance(1.25)
    assert 4_000_000 < budget.spent_ns() < 7_000_000
    assert budget.still_over() is False and budget.over is False


def test_the_cpu_budget_recovers_while_it_refuses_every_hit(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    clock = ManualClock(tick_ns=4_000_000)  # every hit that captures costs 4 ms
    agent = make_agent(clock, cpu_budget=0.01, snapshot_rate=1000.0, snapshot_process_rate=1000.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=1000))
    _hammer(20)
    assert agent.flush() and len(collector.of("p")) == 3  # 12 ms > 10 ms: over
    assert state_of(agent, "p") == THROTTLED
    clock.advance(2.0)  # nothing spent for two seconds
    _hammer(1)
    assert agent.flush() and len(collector.of("p")) == 4
    status = agent.status("p")
    assert status is not None and status.state == ACTIVE, status


def test_defaults_are_the_design_briefs() -> None:
    config = AgentConfig(service="x")
    assert (config.tracepoint_hit_limit, config.probe_expiry) == (10, 3600.0)
    assert (config.snapshot_rate, config.snapshot_process_rate) == (5.0, 50.0)
    assert (config.log_rate, config.log_process_rate) == (200.0, 1000.0)
    assert config.cpu_budget == 0.01
    assert config.buffer_bytes == 8 * 1024 * 1024


def _hammer(count: int) -> None:
    cart = shop.Cart("ann")
    for price in range(count):
        cart.add(float(price))


def test_per_probe_snapshot_rate(make_agent: Callable[..., Agent], collector: Collector) -> None:
    agent = make_agent(cpu_budget=1.0)  # snapshot_rate 5/s by default
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=100))
    _hammer(50)
    agent.flush()
    assert len(collector.of("p")) == 5
    status = agent.status("p")
    assert status is not None
    assert (status.state, status.hits, status.captures, status.drops) == (THROTTLED, 50, 5, 45)
    assert "rate" in (status.message or "")
    assert wait_for(lambda: state_of(agent, "p") == ACTIVE, timeout=5)


def test_per_probe_rate_from_the_spec(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(cpu_budget=1.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=100, rate=2))
    _hammer(20)
    agent.flush()
    assert len(collector.of("p")) == 2


def test_process_wide_snapshot_rate(make_agent: Callable[..., Agent], collector: Collector) -> None:
    agent = make_agent(cpu_budget=1.0, snapshot_rate=100.0, snapshot_process_rate=3.0)
    agent.set_probe(tracepoint("a", SHOP_PATH, shop_line("method"), hit_limit=100))
    agent.set_probe(tracepoint("b", SHOP_PATH, shop_line("total-return"), hit_limit=100))
    for _ in range(10):
        shop.Cart("a").add(1.0)
        shop.total([1.0])
    agent.flush()
    assert len(collector.events) == 3
    status = agent.status("b")
    assert status is not None and "process-wide" in (status.message or "")


def test_logpoint_rates(make_agent: Callable[..., Agent], collector: Collector) -> None:
    agent = make_agent(cpu_budget=1.0, log_rate=7.0)
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "p={price}"))
    _hammer(40)
    agent.flush()
    assert len(collector.of("log")) == 7


def test_cpu_budget_throttles_every_probe(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(cpu_budget=1e-9, snapshot_rate=1000.0, snapshot_process_rate=1000.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=100))
    _hammer(20)
    agent.flush()
    assert len(collector.of("p")) == 1  # the first hit spends the whole budget
    status = agent.status("p")
    assert status is not None and status.state == THROTTLED
    assert "CPU budget" in (status.message or "")
    assert status.drops == 19


def test_a_throttled_logpoint_captures_again_once_its_window_has_room(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    clock = ManualClock()
    agent = make_agent(clock, cpu_budget=1.0, log_rate=5.0)
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "p={price}"))
    for _ in range(3):
        _hammer(40)
        clock.advance(1.0)
    assert agent.flush() and len(collector.of("log")) == 15


def test_the_hit_limit_holds_across_edits_disables_and_enables(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(cpu_budget=1.0, snapshot_rate=1000.0, snapshot_process_rate=1000.0)
    line = shop_line("method")
    agent.set_probe(tracepoint("p", SHOP_PATH, line, hit_limit=10))
    _hammer(4)
    agent.set_probe(tracepoint("p", SHOP_PATH, line, hit_limit=10, version=2, watches=["price"]))
    _hammer(4)
    agent.set_probe(tracepoint("p", SHOP_PATH, line, hit_limit=10, version=3, enabled=False))
    _hammer(4)
    agent.set_probe(tracepoint("p", SHOP_PATH, line, hit_limit=10, version=4))
    _hammer(10)
    assert agent.flush() and len(collector.of("p")) == 10
    status = agent.status("p")
    assert status is not None and (status.state, status.captures) == (DONE, 10)
    agent.set_probe(tracepoint("p", SHOP_PATH, line, hit_limit=10, version=5))
    _hammer(3)
    assert agent.flush() and len(collector.of("p")) == 10
    assert state_of(agent, "p") == DONE
