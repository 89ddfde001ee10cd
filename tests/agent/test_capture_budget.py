"""One capture costs a few milliseconds whatever the data: the walk stops expanding containers
once its estimate, its count of containers or its time is used up, and says so with
``"cut": "budget"``."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, Iterator, List

import pytest
from targets import shop

from conftest import SHOP_PATH, Collector, shop_line, tracepoint
from peephole.agent.clock import Clock
from peephole.agent.core import Agent
from peephole.agent.safe.capture import MAX_NODES, TIME_BUDGET_NS, Capturer
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits

STILL = Clock(monotonic_ns=lambda: 0)  # a clock standing still: only bytes and counts cut


def snapshot(capturer: Capturer, **f_locals: Any) -> Dict[str, Any]:
    """``capturer.frames`` of a real frame holding ``f_locals`` as its locals."""
    namespace: Dict[str, Any] = {
        "capture": lambda frame: capturer.frames([(frame, 1)], range(1)),
        "sys": sys,
    }
    source = f"def run({', '.join(f_locals)}):\n    return capture(sys._getframe())\n"
    exec(source, namespace)  # a function whose locals are exactly these names
    return namespace["run"](**f_locals)  # type: ignore[no-any-return]


def calls_made(run: Callable[[], object]) -> int:
    """Python and C functions ``run`` called: the walk's work, counted the same however
    loaded the machine (without a walking budget the cube made 2.2 million, now 10,000)."""
    calls = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" or event == "c_call":
            calls[0] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls[0]


def _stubs(node: Any) -> Iterator[Dict[str, Any]]:
    """Every value node cut for the budget."""
    if isinstance(node, dict):
        if node.get("cut") == "budget" and "t" in node:
            yield node
        for value in node.values():
            yield from _stubs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _stubs(value)


def _hostile_values() -> Dict[str, Callable[[], Any]]:
    return {
        "cube": lambda: [[[i for i in range(100)] for _ in range(100)] for _ in range(100)],
        "wide_strings": lambda: {
            f"k{i}": {f"j{j}": "x" * 200 for j in range(100)} for i in range(100)
        },
        "dicts_of_lists": lambda: [
            {"a": [[1, 2]] * 100, "b": list(range(100))} for _ in range(100)
        ],
        "objects": lambda: [_Node(_Node(_Node(None))) for _ in range(100)],
    }


class _Node:
    def __init__(self, child: Any) -> None:
        self.child = child
        self.items = list(range(100))
        self.text = "y" * 300


@pytest.mark.parametrize("shape", sorted(_hostile_values()))
def test_a_capture_costs_little_whatever_the_data(shape: str) -> None:
    """Bounded by the bytes estimate and the container count alone (the clock stands still):
    at most 60,000 calls (27,000 now, dicts_of_lists the most; without the walking budget
    the cube made 2.2 million, wide_strings 150,000, dicts_of_lists 127,000)."""
    value = _hostile_values()[shape]()
    capturer = Capturer(Limits(), Redactor(), clock=STILL)
    snapshot(capturer, value=value)  # warm the caches, as a running probe's would be
    results: List[Dict[str, Any]] = []
    calls = calls_made(lambda: results.append(snapshot(capturer, value=value, other=value)))
    assert calls < 60_000, shape
    assert len(json.dumps(results[0])) <= Limits().max_bytes * 1.1


def test_the_cube_is_cut_for_the_budget() -> None:
    cube = _hostile_values()["cube"]()
    result = snapshot(Capturer(Limits(), Redactor()), cube=cube)
    assert result["cut"] == "budget"
    shown = result["frames"][0]["locals"]["cube"]
    assert shown["t"] == "list" and shown["len"] == 100
    assert shown["items"][0]["items"][0]["items"][:3] == [{"t": "int", "v": i} for i in range(3)]
    assert any(True for _ in _stubs(shown))


def test_large_limits_are_still_bounded_by_count() -> None:
    """The clock stands still: the container count alone stops the walk, at most 300,000
    calls in (92,000 now; 25.7 million without the walking budget)."""
    limits = Limits(max_items=1000, max_depth=6, max_string=10_000, max_bytes=2 * 1024 * 1024)
    tree: List[Any] = [[[[[i] for i in range(10)] for _ in range(10)] for _ in range(100)]
                       for _ in range(100)]  # fmt: skip
    results: List[Dict[str, Any]] = []
    capturer = Capturer(limits, Redactor(), clock=STILL)
    assert calls_made(lambda: results.append(snapshot(capturer, tree=tree))) < 300_000
    assert results[0]["cut"] == "budget"


class _StepClock:
    """A clock that moves 1 ms each time it is read."""

    def __init__(self) -> None:
        self.now = 0
        self.readings = 0

    def __call__(self) -> int:
        self.readings += 1
        self.now += 1_000_000
        return self.now


def test_the_time_budget_is_read_on_the_capturers_clock() -> None:
    """Small data, well within the bytes and the container count: only time cuts it."""
    clock = _StepClock()
    value = [{"n": i} for i in range(100)]
    result = snapshot(Capturer(Limits(), Redactor(), clock=Clock(monotonic_ns=clock)), value=value)
    assert result["cut"] == "budget"
    items = result["frames"][0]["locals"]["value"]["items"]
    expanded = [item for item in items if item.get("cut") != "budget"]
    budget_ms = TIME_BUDGET_NS // 1_000_000
    assert 0 < len(expanded) < 100
    assert clock.readings <= budget_ms + 2  # read every few containers, not at each one
    assert items[-1] == {"t": "dict", "cut": "budget"}


def test_within_the_budget_nothing_is_cut() -> None:
    """Bytes and containers within bounds (the clock stands still: a loaded machine could
    pause this thread for more than the time budget)."""
    capturer = Capturer(Limits(), Redactor(), clock=STILL)
    result = snapshot(capturer, value=[{"n": i} for i in range(100)])
    assert "cut" not in result


def test_the_container_count_is_bounded() -> None:
    limits = Limits(max_items=1000, max_depth=3, max_bytes=2 * 1024 * 1024)
    many: List[List[List[int]]] = [
        [[] for _ in range(10)] for _ in range(1000)
    ]  # small, but many containers
    result = snapshot(Capturer(limits, Redactor(), clock=STILL), many=many)
    assert result["cut"] == "budget"
    expanded = sum(1 for item in result["frames"][0]["locals"]["many"]["items"]
                   for child in item.get("items", ()) if "items" in child)  # fmt: skip
    assert expanded <= MAX_NODES


def test_a_probes_capture_reads_the_time_budget_on_the_agents_clock(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    """The agent's injectable clock times the walk too, not ``time``'s: a monotonic clock
    that moves 1 ms at each reading runs the 5 ms budget out within the list."""
    agent = make_agent(Clock(monotonic_ns=_StepClock()), cpu_budget=1000.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method")))
    shop.Cart("ann").add([{"n": i} for i in range(100)])  # type: ignore[arg-type]
    assert agent.flush() and collector.wait(1, probe_id="p")
    (event,) = collector.of("p")
    assert event["cut"] == "budget"
    items = event["frames"][0]["locals"]["price"]["items"]
    assert 0 < sum(1 for item in items if item.get("cut") != "budget") < 100
