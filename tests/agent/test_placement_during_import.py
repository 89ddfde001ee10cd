"""Probes placed before, during and after the import of their module, on every version.

A module is in ``sys.modules`` before its body has run. A probe applied in that window (the
server's probe list arriving during the program's first imports, or the retry of pending
probes) used to end in a permanent error on 3.9/3.10, or ``active`` without ever firing on
3.11. Here the module body stops at gates, and the probes are applied from another thread
at each of them.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from conftest import Collector, line_of, state_of, tracepoint, wait_for
from peephole.agent.core import Agent
from peephole.protocol import ACTIVE

GATES = "peephole_test_gates"
MODULE = f"""\
import {GATES}
{GATES}.at(0)


def before(x):
    return x + 1  # @before


{GATES}.at(1)
triple = lambda x: x * 3  # noqa: E731  @lambda
{GATES}.at(2)


class Box:
    def get(self, x):
        value = x * 2  # @method
        return value


{GATES}.at(3)


def target(x):
    doubled = x * 2  # @target
    return doubled


{GATES}.at(4)


def make():
    def inner(y):
        return y + 1  # @closure
    return inner


{GATES}.at(5)
"""
POINTS = 6
CALLS: Dict[str, Callable[[types.ModuleType], object]] = {
    "before": lambda m: m.before(1),
    "lambda": lambda m: m.triple(1),
    "method": lambda m: m.Box().get(1),
    "target": lambda m: m.target(1),
    "closure": lambda m: m.make()(1),
}


class Gates:
    """The module body calls ``at(i)``; at the chosen point it waits for the test."""

    def __init__(self, point: Optional[int]) -> None:
        self.point = point
        self.reached = threading.Event()
        self.go = threading.Event()

    def at(self, point: int) -> None:
        if point == self.point:
            self.reached.set()
            self.go.wait(10)


def _apply(agent: Agent, path: Path, tag: str) -> None:
    for marker in CALLS:
        spec = tracepoint(f"{tag}-{marker}", path.name, line_of(path, marker), hit_limit=100)
        agent.set_probe(spec)


def _import(name: str, gates: Gates, failures: List[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            gates.reached.set()

    return run


@pytest.mark.parametrize("point", [None, *range(POINTS)])
def test_a_probe_applied_at_any_point_of_an_import_ends_active_and_fires(
    agent: Agent,
    collector: Collector,
    module_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: Optional[int],
) -> None:
    """``None``: applied before the import starts; ``i``: while the body waits at gate i."""
    for round_ in range(2):  # fresh modules: code objects freed and their ids reused
        name = f"during_{point}_{round_}"
        path = module_dir / f"{name}.py"
        path.write_text(MODULE)
        importlib.invalidate_caches()
        gates = Gates(point)
        monkeypatch.setitem(sys.modules, GATES, gates)
        failures: List[BaseException] = []
        importer = threading.Thread(target=_import(name, gates, failures))
        if point is None:
            _apply(agent, path, name)
            importer.start()
        else:
            importer.start()
            assert gates.reached.wait(10)
            _apply(agent, path, name)
            gates.go.set()
        importer.join(10)
        assert not failures
        ids = [f"{name}-{marker}" for marker in CALLS]

        def all_active(ids: List[str] = ids) -> bool:
            return all(state_of(agent, i) == ACTIVE for i in ids)

        assert wait_for(all_active), [state_of(agent, i) for i in ids]
        agent.flush()
        before = {i: len(collector.of(i)) for i in ids}
        module = sys.modules[name]
        for call in CALLS.values():
            call(module)
        assert agent.flush()
        assert {i: len(collector.of(i)) - before[i] for i in ids} == {i: 1 for i in ids}
        for probe_id in ids:
            agent.remove_probe(probe_id)


AT_IMPORT = """\
def helper(x):
    grown = x + 1  # @helper
    return grown


VALUE = helper(1)  # @module-level
OTHER = [helper(n) for n in range(3)]
"""


def test_lines_run_during_the_import_are_hit_for_pending_probes(
    agent: Agent, collector: Collector, module_dir: Path
) -> None:
    """The module's code is armed before its body runs: a module-level line and a function
    the body calls are hit during the import itself."""
    path = module_dir / "during_at_import.py"
    path.write_text(AT_IMPORT)
    importlib.invalidate_caches()
    for marker in ("helper", "module-level"):
        agent.set_probe(tracepoint(marker, path.name, line_of(path, marker), hit_limit=100))
    importlib.import_module("during_at_import")
    assert state_of(agent, "helper") == ACTIVE
    assert agent.flush()
    assert len(collector.of("module-level")) == 1
    assert len(collector.of("helper")) == 4
    sys.modules["during_at_import"].helper(5)
    assert agent.flush()
    assert len(collector.of("helper")) == 5
