"""The in-process API: events, logpoints into ``logging``, source serving, fork, stop."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from typing import Any, Callable, Dict, List

import pytest
from targets import shop

from conftest import SHOP_PATH, TARGETS, Collector, logpoint, shop_line, tracepoint
from peephole import protocol
from peephole.agent.core import Agent


def test_a_snapshot_event(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), watches=["price * 2"]))
    cart = shop.Cart("ann")

    def caller_one() -> None:
        cart.add(4.0)

    def caller_two() -> None:
        caller_one()

    thread = threading.Thread(target=caller_two, name="worker-7")
    thread.start()
    thread.join()
    assert agent.flush()
    (event,) = collector.of("p")
    assert event["type"] == protocol.SNAPSHOT
    assert (event["probe_id"], event["probe_version"]) == ("p", 1)
    assert os.path.samefile(event["file"], TARGETS / "shop.py")
    assert event["line"] == shop_line("method")
    assert event["thread"] == "worker-7"
    assert event["instance_id"] == agent.config.instance_id
    assert event["service"] == "tests"
    functions = [frame["function"] for frame in event["frames"]]
    assert functions[0].endswith("add")
    assert functions[1].endswith("caller_one") and functions[2].endswith("caller_two")
    assert [("locals" in frame) for frame in event["frames"][:4]] == [True, True, True, False]
    assert event["frames"][0]["locals"]["price"] == {"t": "float", "v": 4.0}
    assert event["watches"][0]["expr"] == "price * 2"
    json.dumps(event)  # the whole event is plain JSON


def test_a_logpoint_event_and_the_application_log(
    agent: Agent, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    agent.set_probe(
        logpoint(
            "log",
            SHOP_PATH,
            shop_line("method"),
            "owner={self.owner} price={price}",
            logger="shop.audit",
            level="warning",
        )
    )
    with caplog.at_level(logging.INFO, logger="shop.audit"):
        shop.Cart("ann").add(2.5)
    agent.flush()
    (event,) = collector.of("log")
    assert event["type"] == protocol.LOG
    assert (event["message"], event["level"], event["errors"]) == (
        "owner=ann price=2.5",
        "warning",
        [],
    )
    (record,) = [r for r in caplog.records if r.name == "shop.audit"]
    assert record.getMessage() == "owner=ann price=2.5"
    assert record.levelno == logging.WARNING


def test_logpoints_write_to_logging_only_when_asked(
    agent: Agent, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "price={price}"))
    with caplog.at_level(logging.DEBUG):
        shop.Cart("ann").add(2.5)
    agent.flush()
    assert len(collector.of("log")) == 1
    assert not [r for r in caplog.records if r.getMessage() == "price=2.5"]


def test_events_carry_the_opentelemetry_trace(agent: Agent, collector: Collector) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk import trace as sdk

    tracer = sdk.TracerProvider().get_tracer("tests")
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "p={price}", logger="t"))
    with tracer.start_as_current_span("request") as span:
        shop.Cart("ann").add(1.0)
        context = span.get_span_context()
    agent.flush()
    (event,) = collector.of("log")
    assert event["trace_id"] == f"{context.trace_id:032x}"
    assert event["span_id"] == f"{context.span_id:016x}"
    assert trace.get_current_span() is not span


def test_emit_from_any_thread_fills_the_common_fields(agent: Agent, collector: Collector) -> None:
    event = protocol.new_event(protocol.EXCEPTION, fingerprint="f", message="boom")
    thread = threading.Thread(target=agent.emit, args=(event,))
    thread.start()
    thread.join()
    agent.flush()
    (got,) = collector.events
    assert (got["instance_id"], got["service"]) == (agent.config.instance_id, "tests")
    assert "trace_id" not in got


def test_get_source_and_list_files(agent: Agent) -> None:
    served = agent.get_source("targets/shop.py")
    assert served["text"].startswith('"""A small shop')
    assert shop_line("method") in served["lines"]
    assert "error" in agent.get_source("targets/nothing_here.py")
    files = agent.list_files()
    assert any(f.endswith("targets/shop.py") for f in files)
    assert threading.__file__ not in files  # the standard library is not the application
    ours = os.sep + "peephole" + os.sep + "agent" + os.sep
    assert [f for f in files if ours in f] == []


def test_an_agent_without_probes_instruments_nothing(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent()
    shop.total([1.0])
    assert agent.backend is None
    if sys.version_info >= (3, 12):
        monitoring = sys.monitoring
        assert "peephole" not in [monitoring.get_tool(i) for i in range(6)]


def test_stop_removes_every_probe_and_restores_the_code(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    original = shop.total.__code__
    agent = make_agent(snapshot_rate=100.0, cpu_budget=1.0)
    agent.set_probe(tracepoint("a", SHOP_PATH, shop_line("total-body")))
    agent.set_probe(logpoint("b", SHOP_PATH, shop_line("closure"), "x"))
    agent.stop()
    assert agent.statuses() == []
    assert shop.total.__code__ is original
    shop.total([1.0])
    shop.make_discount(0.5)(1.0)
    assert collector.events == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_keeps_the_probes_with_its_own_threads(
    make_agent: Callable[..., Agent],
) -> None:
    sent: List[Dict[str, Any]] = []
    agent = make_agent(snapshot_rate=100.0, cpu_budget=1.0)
    agent.sink = sent.extend
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method")))
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads on 3.12+
        pid = os.fork()
    if pid == 0:  # the child: report what it captured through the pipe, then leave
        code = 1
        try:
            agent.config.instance_id = "child"
            agent.after_fork_in_child()
            shop.Cart("kid").add(1.0)
            delivered = agent.flush(5)
            os.write(write, json.dumps([delivered, [e["instance_id"] for e in sent]]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        delivered, instances = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert delivered is True and instances == ["child"]


def test_a_template_and_a_watch_read_free_variables_arguments_and_unbound_locals(
    agent: Agent, collector: Collector
) -> None:
    """Where the C speed-ups read a frame's variables one at a time (3.9, 3.10, 3.12) a
    template and a watch see what ``f_locals`` shows: a closure's free variable, an argument,
    and a local not assigned yet as no variable (then a global, then an error)."""
    line = shop_line("closure")
    agent.set_probe(logpoint("log", SHOP_PATH, line, "rate={rate} amount={amount} r={reduced}"))
    agent.set_probe(tracepoint("snap", SHOP_PATH, line, watches=["rate * amount", "reduced"]))
    shop.make_discount(0.25)(8.0)
    assert collector.wait(1, probe_id="log") and collector.wait(1, probe_id="snap")
    (log,) = [e for e in collector.events if e["probe_id"] == "log"]
    assert log["message"] == "rate=0.25 amount=8.0 r={!error: name 'reduced' is not defined}"
    (snap,) = [e for e in collector.events if e["probe_id"] == "snap"]
    assert snap["watches"] == [
        {"expr": "rate * amount", "value": {"t": "float", "v": 2.0}},
        {"expr": "reduced", "error": "name 'reduced' is not defined"},
    ]
