"""Placing and removing probes never walks the heap: the registry finds functions where their
module keeps them."""

from __future__ import annotations

import gc
import types
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from targets import shop

from conftest import SHOP_PATH, TARGETS, Collector, shop_line, state_of, tracepoint
from peephole.agent.core import Agent
from peephole.agent.placement.paths import spellings
from peephole.agent.placement.registry import REGISTRY, functions_in
from peephole.protocol import ACTIVE

MARKERS = ["total-body", "method", "class-method", "static-method", "closure", "decorated"]


@pytest.fixture
def no_heap_walk(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Any call that visits every object of the process fails the test."""
    calls: List[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def walk(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"gc.{name} walks the whole heap")

        return walk

    for name in ("get_referrers", "get_referents", "get_objects"):
        monkeypatch.setattr(gc, name, refuse(name))
    return calls


def test_placing_and_removing_probes_never_walks_the_heap(
    agent: Agent, collector: Collector, no_heap_walk: List[str]
) -> None:
    for marker in MARKERS:
        agent.set_probe(tracepoint(marker, SHOP_PATH, shop_line(marker), hit_limit=100))
    assert {m: state_of(agent, m) for m in MARKERS} == {m: ACTIVE for m in MARKERS}
    shop.total([1.0])
    shop.Cart("a").add(1.0)
    shop.Cart.empty("b")
    shop.Cart.with_tax(1.0)
    shop.make_discount(0.1)(5.0)
    shop.checkout(shop.Cart("c"))
    assert agent.flush()
    assert {m: len(collector.of(m)) for m in MARKERS} == {m: 1 for m in MARKERS}
    for marker in MARKERS:
        agent.remove_probe(marker)
    assert shop.Cart.add.__code__.co_name == "add"
    assert no_heap_walk == []


def test_the_registry_sees_what_a_module_keeps() -> None:
    functions = REGISTRY.functions(spellings(str(TARGETS / "shop.py")))
    assert {
        "total",
        "Cart.add",
        "Cart.empty",  # a classmethod
        "Cart.with_tax",  # a staticmethod
        "make_discount",
        "checkout",
        "<lambda>",
    } <= {f.__qualname__ for f in functions}
    wrapper = shop.checkout  # functools.wraps: the wrapper and the function it wraps
    assert wrapper in functions and wrapper.__wrapped__ in functions  # type: ignore[attr-defined]


def test_walking_a_namespace_runs_no_code_of_the_application(tmp_path: Path) -> None:
    """A class whose attribute access runs code is looked at through its own ``__dict__``."""
    source = tmp_path / "hostile_namespace.py"
    namespace: Dict[str, Any] = {"__name__": "hostile_namespace"}
    text = (
        "class Meta(type):\n"
        "    def __getattribute__(cls, name):\n"
        "        raise RuntimeError('ran application code')\n"
        "class Sneaky(metaclass=Meta):\n"
        "    def method(self):\n"
        "        return 1\n"
        "    @property\n"
        "    def value(self):\n"
        "        return 2\n"
        "registry = {'handler': lambda: 3}\n"
    )
    exec(compile(text, str(source), "exec"), namespace)
    found = functions_in(namespace, {str(source)})
    names = sorted(f.__qualname__ for f in found if isinstance(f, types.FunctionType))
    assert names == ["<lambda>", "Meta.__getattribute__", "Sneaky.method", "Sneaky.value"]
