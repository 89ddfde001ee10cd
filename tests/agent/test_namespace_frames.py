"""Frames whose variables live in a mapping (module and class bodies, exec()'d code): the agent
never reads a mapping of the application's own, whose methods are the application's code.

Before 3.13 even reading ``frame.f_locals`` of a class body with a cell (``__class__``, from
``super()``) writes the cell into the body's namespace, which a metaclass's ``__prepare__``
may have made a dict subclass with its own ``__setitem__``.
"""

from __future__ import annotations

from typing import List, Tuple

from targets import namespaces

from conftest import TARGETS, Collector, line_of, logpoint, state_of, tracepoint
from peephole.agent.core import Agent
from peephole.agent.probe import NAMESPACE_REFUSED
from peephole.agent.safe.capture import Capturer, stack_of
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits

TARGET = "targets/namespaces.py"


def test_a_stack_through_a_class_body_is_captured_without_touching_its_namespace() -> None:
    namespaces.FRAMES.clear()
    namespaces.make()
    caller = namespaces.FRAMES[-1]
    namespaces.ACCESSES.clear()
    captured = Capturer(Limits(), Redactor()).frames(stack_of(caller, 5), [0, 1, 2])
    assert namespaces.ACCESSES == []
    body = captured["frames"][1]
    assert body["function"].endswith("Model")
    assert body["locals"] == {} and body["locals_cut"] == "unsupported"
    assert captured["frames"][2]["function"].endswith("make")  # a function's locals: shown
    assert "locals" in captured["frames"][2]


def _class_statement_accesses() -> List[Tuple[str, str]]:
    """What running the class statement does to its namespace: the accesses a probe adds
    nothing to."""
    namespaces.ACCESSES.clear()
    namespaces.make()
    return list(namespaces.ACCESSES)


def test_probes_in_a_class_body_with_its_own_namespace_do_not_read_it(
    agent: Agent, collector: Collector
) -> None:
    line = line_of(TARGETS / "namespaces.py", "class-body")
    expected = _class_statement_accesses()
    assert ("get", "price") in expected  # (the body's own ``price * 2``)
    agent.set_probe(tracepoint("condition", TARGET, line, condition="price > 1"))
    agent.set_probe(tracepoint("watch", TARGET, line, watches=["price"]))
    agent.set_probe(logpoint("log", TARGET, line, "price={price}"))
    agent.set_probe(tracepoint("stack", TARGET, line))
    for probe_id in ("condition", "watch", "log", "stack"):
        assert state_of(agent, probe_id) == "active", probe_id
    assert _class_statement_accesses() == expected
    for probe_id in ("condition", "watch", "log"):
        status = agent.status(probe_id)
        assert status is not None and status.message == NAMESPACE_REFUSED, probe_id
        assert status.hits == 1 and not collector.of(probe_id)
    assert collector.wait(1, probe_id="stack")  # the stack, without the body's variables
    (event,) = collector.of("stack")
    assert event["frames"][0]["locals_cut"] == "unsupported"
    assert "locals" in event["frames"][1]  # make(), a function: its locals are shown
