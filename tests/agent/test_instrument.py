"""Instrumentation by interpreter: sys.monitoring on 3.12+, bytecode injection on 3.9-3.11.

Tests drive the backend through :func:`locate` with a plain hook, so they check where and
how often a statement fires, and that removal restores the code exactly.
"""

from __future__ import annotations

import asyncio
import dis
import opcode
import sys
import threading
import types
from typing import Any, Callable, Iterator, List, Tuple

import pytest
from targets import shop

from conftest import MONITORING, shop_line, wait_for
from peephole.agent.placement.instrument import Backend, new_backend
from peephole.agent.placement.locate import Resolution, locate

Hit = Tuple[str, int]


@pytest.fixture
def backend() -> Iterator[Backend]:
    made = new_backend()
    yield made
    made.close()
    assert made.armed_codes() == []


class Recorder:
    def __init__(self) -> None:
        self.hits: List[Hit] = []

    def __call__(self, frame: types.FrameType) -> None:
        self.hits.append((frame.f_code.co_name, frame.f_lineno))


def arm(backend: Backend, marker: str, hook: Callable[[types.FrameType], None]) -> Resolution:
    resolution = locate("targets/shop.py", shop_line(marker), backend.instructions, backend.unwrap)
    for target in resolution.targets:
        backend.arm(target, resolution.index, hook)
    return resolution


def disarm(backend: Backend, resolution: Resolution, hook: Callable[..., None]) -> None:
    for target in resolution.targets:
        backend.disarm(target, hook)


async def _collect(agen: Any) -> List[Any]:
    return [item async for item in agen]


CASES: List[Tuple[str, Callable[[], Any], str, int]] = [
    ("total-start", lambda: shop.total([1.0, 2.0]), "total", 1),
    ("total-body", lambda: shop.total([1.0, 2.0, 3.0]), "total", 3),
    ("method", lambda: shop.Cart("ann").add(3.0), "add", 1),
    ("class-method", lambda: shop.Cart.empty("ann").owner, "empty", 1),
    ("static-method", lambda: shop.Cart.with_tax(10.0), "with_tax", 1),
    ("closure", lambda: shop.make_discount(0.1)(10.0), "discount", 1),
    ("decorated", lambda: shop.checkout(shop.Cart("ann")), "checkout", 1),
    ("generator", lambda: list(shop.countdown(3)), "countdown", 3),
    ("coroutine", lambda: asyncio.run(shop.fetch_price("abc")), "fetch_price", 1),
    (
        "async-generator",
        lambda: asyncio.run(_collect(shop.stream_prices(["a", "bb"]))),
        "stream_prices",
        2,
    ),
    ("thread", lambda: shop.in_thread([1, 2, 3]), "work", 1),
    ("one-liner", lambda: shop.square(4), "square", 1),
    ("lambda", lambda: shop.cube(2), "<lambda>", 1),
    ("handler", lambda: shop.guarded(0), "guarded", 1),
]


@pytest.mark.parametrize(("marker", "run", "function", "count"), CASES, ids=[c[0] for c in CASES])
def test_statement_fires_once_per_execution(
    backend: Backend, marker: str, run: Callable[[], Any], function: str, count: int
) -> None:
    hook = Recorder()
    resolution = arm(backend, marker, hook)
    before = run()
    assert hook.hits == [(function, shop_line(marker))] * count
    disarm(backend, resolution, hook)
    assert run() == before
    assert len(hook.hits) == count


@pytest.mark.parametrize("marker", ["multi-first", "multi-middle"])
def test_multi_line_statement_is_one_hit_per_execution(backend: Backend, marker: str) -> None:
    """3.9 revisits a multi-line statement's first line after its arguments; still one hit."""
    hook = Recorder()
    resolution = arm(backend, marker, hook)
    shop.total([1.0])
    shop.total([2.0])
    assert hook.hits == [("total", shop_line("multi-first"))] * 2
    disarm(backend, resolution, hook)


def test_loop_header_fires_when_the_loop_is_entered_not_per_iteration(backend: Backend) -> None:
    hook = Recorder()
    resolution = arm(backend, "total-for", hook)
    shop.total([1.0, 2.0, 3.0])
    assert hook.hits == [("total", shop_line("total-for"))]
    disarm(backend, resolution, hook)


def test_except_clause_fires_only_when_the_exception_is_handled(backend: Backend) -> None:
    hook = Recorder()
    resolution = arm(backend, "except", hook)
    assert shop.guarded(5) == 2
    assert hook.hits == []
    assert shop.guarded(0) == -1
    assert hook.hits == [("guarded", shop_line("except"))]
    disarm(backend, resolution, hook)


def test_closures_made_before_the_probe_are_covered_by_sys_monitoring_only(
    backend: Backend,
) -> None:
    """3.12+ arms the closure's code object, which every closure shares. 3.9-3.11 swaps
    ``__code__`` in the functions the registry knows: a closure made before the probe and
    kept outside its module keeps its code, like a running frame (documented in limits.md).
    Closures made after the probe run the probed code on every version."""
    early = shop.make_discount(0.5)
    hook = Recorder()
    resolution = arm(backend, "closure", hook)
    assert early(10.0) == 5.0
    late = shop.make_discount(0.5)
    assert late(10.0) == 5.0
    assert len(hook.hits) == (2 if MONITORING else 1)
    disarm(backend, resolution, hook)
    fired = len(hook.hits)
    early(1.0)
    late(1.0)
    shop.make_discount(0.5)(1.0)
    assert len(hook.hits) == fired


def test_two_hooks_on_one_line_and_removing_one(backend: Backend) -> None:
    first, second = Recorder(), Recorder()
    one = arm(backend, "method", first)
    two = arm(backend, "method", second)
    shop.Cart("a").add(1.0)
    disarm(backend, one, first)
    shop.Cart("a").add(1.0)
    assert len(first.hits) == 1
    assert len(second.hits) == 2
    disarm(backend, two, second)


def _codes_of(*functions: Any) -> List[types.CodeType]:
    codes = []
    for function in functions:
        code = function.__code__
        codes.append(code)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return codes


def test_removal_restores_the_original_exactly(backend: Backend) -> None:
    functions = [shop.total, shop.make_discount, shop.Cart.add, shop.countdown, shop.square]
    originals = [f.__code__ for f in functions]
    hook = Recorder()
    markers = ["total-body", "multi-middle", "closure", "method", "generator", "one-liner"]
    resolutions = [arm(backend, marker, hook) for marker in markers]
    if not MONITORING:
        assert [f.__code__ is o for f, o in zip(functions, originals)] == [False] * 5
    for resolution in resolutions:
        disarm(backend, resolution, hook)
    assert [f.__code__ is o for f, o in zip(functions, originals)] == [True] * 5
    assert backend.armed_codes() == []
    if sys.version_info >= (3, 12):  # MONITORING, spelled so type checkers see it
        from peephole.agent.placement.instrument.monitoring import MonitoringBackend

        assert isinstance(backend, MonitoringBackend)
        for code in _codes_of(*functions):
            assert backend.local_events(code) == 0


def test_a_running_frame_sees_a_new_probe_only_with_sys_monitoring(backend: Backend) -> None:
    """3.12+: the loop already running hits the probe. 3.9-3.11: the running frame keeps the
    code it started with, so only the next call is probed (documented)."""
    stop, started = threading.Event(), threading.Event()
    turns: List[int] = [0]
    hook = Recorder()
    worker = threading.Thread(target=shop.spin, args=(stop, started, turns))
    worker.start()
    try:
        assert started.wait(5)
        resolution = arm(backend, "spin", hook)
        armed_at = turns[0]
        if MONITORING:
            wait_for(lambda: len(hook.hits) > 0, timeout=5.0)
        else:  # the loop runs on past the probed line many times, and never hits the probe
            wait_for(lambda: turns[0] > armed_at + 10_000, timeout=5.0)
    finally:
        stop.set()
        worker.join(5)
    disarm(backend, resolution, hook)
    assert bool(hook.hits) is MONITORING


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_a_line_disabled_earlier_fires_once_armed(backend: Backend) -> None:
    body, ret = Recorder(), Recorder()
    first = arm(backend, "total-body", body)
    shop.total([1.0])  # the other lines of total() return DISABLE here
    second = arm(backend, "total-return", ret)
    shop.total([1.0])
    assert len(ret.hits) == 1
    assert len(body.hits) == 2
    disarm(backend, first, body)
    disarm(backend, second, ret)


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_only_the_probed_statement_stays_instrumented_after_a_run(backend: Backend) -> None:
    """A function with a probe runs at full speed everywhere but the probed statement once
    each path ran. With LINE events the loop of a comprehension (a line start reached again
    from its own line, which never calls the callback) stayed instrumented for good."""
    hook = Recorder()
    resolution = arm(backend, "after-comprehension", hook)
    shop.catalogue(5)
    shop.catalogue(5)
    code = shop.catalogue.__code__
    live = code._co_code_adaptive  # type: ignore[attr-defined]  # 3.12+: with instrumentation
    instrumented = {
        offset
        for offset in range(0, len(live), 2)
        if opcode.opname[live[offset]].startswith("INSTRUMENTED_")
    }
    loops = {ins.offset for ins in dis.get_instructions(code) if ins.opname == "FOR_ITER"}
    (target,) = resolution.targets
    assert loops and not loops & instrumented
    assert set(target.keys) <= instrumented
    assert len(hook.hits) == 2
    disarm(backend, resolution, hook)


@pytest.mark.skipif(not MONITORING, reason="sys.monitoring is 3.12+")
def test_coexists_with_a_tool_that_holds_our_preferred_id() -> None:
    if sys.version_info >= (3, 12):  # always (skipped before): type checkers for 3.9 skip it
        from peephole.agent.placement.instrument.monitoring import (
            TOOL_PREFERENCE,
            MonitoringBackend,
        )

        monitoring = sys.monitoring
        taken = TOOL_PREFERENCE[0]
        other_hits: List[int] = []
        monitoring.use_tool_id(taken, "other-tool")
        try:
            monitoring.register_callback(
                taken, monitoring.events.LINE, lambda code, line: other_hits.append(line)
            )
            monitoring.set_local_events(taken, shop.square.__code__, monitoring.events.LINE)
            backend = MonitoringBackend()
            hook = Recorder()
            resolution = arm(backend, "method", hook)
            assert backend.tool not in (None, taken)
            shop.Cart("a").add(1.0)
            shop.square(2)
            assert len(hook.hits) == 1
            disarm(backend, resolution, hook)
            backend.close()
            assert monitoring.get_tool(taken) == "other-tool"
        finally:
            monitoring.set_local_events(taken, shop.square.__code__, 0)
            monitoring.register_callback(taken, monitoring.events.LINE, None)
            monitoring.free_tool_id(taken)


def test_a_hook_that_raises_never_reaches_the_application(backend: Backend) -> None:
    def broken(frame: types.FrameType) -> None:
        raise RuntimeError("bug in a probe")

    resolution = arm(backend, "method", broken)
    assert shop.Cart("a").add(1.0) == 1
    disarm(backend, resolution, broken)
