"""OpenTelemetry: events carry the current span's ids, and the span gets a ``peephole.snapshot``
event with the snapshot's id; without a span nothing is added, and without OpenTelemetry
nothing is imported."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from integrations.capture_harness import Harness, serve_asgi
from peephole import protocol

logger = logging.getLogger("tests.integrations.otel")


@pytest.fixture
def tracing() -> Iterator[Tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("tests"), exporter
    provider.shutdown()


def charge(amount: int) -> None:
    fee = amount // 10
    raise ValueError("card declined", fee)


def ids_of(span: Any) -> Tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_exception_events_carry_the_span_and_the_span_gets_the_snapshot_id(
    capturing: Harness, tracing: Tuple[Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = tracing
    with tracer.start_as_current_span("checkout") as span:
        trace_id, span_id = ids_of(span)
        for _ in range(2):
            try:
                charge(100)
            except ValueError:
                logger.exception("charge failed")
    capturing.exceptions.flush()
    snapshot, count = capturing.events
    assert (snapshot["trace_id"], snapshot["span_id"]) == (trace_id, span_id)
    assert "trace_id" not in count  # sent later, from the agent's thread, outside the span
    [finished] = exporter.get_finished_spans()
    [span_event] = [e for e in finished.events if e.name == "peephole.snapshot"]
    assert span_event.attributes is not None
    assert span_event.attributes["peephole.event_id"] == snapshot["id"]
    assert span_event.attributes["peephole.fingerprint"] == snapshot["fingerprint"]


def test_span_events_can_be_switched_off(tracing: Tuple[Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = tracing
    harness = Harness(otel_span_events=False)
    try:
        with tracer.start_as_current_span("checkout") as span:
            try:
                charge(5)
            except ValueError:
                logger.exception("charge failed")
        [event] = harness.events
    finally:
        harness.close()
    assert event["span_id"] == ids_of(span)[1]
    [finished] = exporter.get_finished_spans()
    assert list(finished.events) == []


def test_no_trace_ids_outside_a_recording_span(capturing: Harness) -> None:
    try:
        charge(1)
    except ValueError:
        logger.exception("no span")
    [event] = capturing.events
    assert "trace_id" not in event and "span_id" not in event


def test_every_event_type_carries_the_trace_ids(
    capturing: Harness, tracing: Tuple[Tracer, InMemorySpanExporter]
) -> None:
    tracer, _ = tracing
    with tracer.start_as_current_span("request") as span:
        capturing.agent.emit(protocol.new_event(protocol.SNAPSHOT, probe_id="p1", frames=[]))
        capturing.agent.emit(protocol.new_event(protocol.LOG, probe_id="p2", message="hi"))
    expected = ids_of(span)
    assert [(e["trace_id"], e["span_id"]) for e in capturing.events] == [expected, expected]


def checkout(total: int) -> int:
    discounted = total - 1  # @probe-line
    return discounted


def probe_line() -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.endswith("# @probe-line"))


def test_tracepoints_and_logpoints_carry_the_trace(
    tracing: Tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, _ = tracing
    capturing = Harness(cpu_budget=1.0)  # a loaded test machine must not throttle the probes
    records: List[logging.LogRecord] = []

    class Recording(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Recording()
    logpoint_logger = logging.getLogger("tests.integrations.logpoints")
    logpoint_logger.addHandler(handler)
    logpoint_logger.propagate = False
    logpoint_logger.setLevel(logging.INFO)
    agent = capturing.agent
    try:
        for spec in (
            protocol.ProbeSpec(id="tp", kind="tracepoint", file=__file__, line=probe_line()),
            protocol.ProbeSpec(
                id="lp",
                kind="logpoint",
                file=__file__,
                line=probe_line(),
                template="total={total}",
                logger=logpoint_logger.name,
            ),
        ):
            assert agent.set_probe(spec).state == protocol.ACTIVE
        with tracer.start_as_current_span("checkout") as span:
            checkout(10)
        events = capturing.events
    finally:
        capturing.close()
        logpoint_logger.removeHandler(handler)
    trace_id, span_id = ids_of(span)
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {"snapshot", "log"}
    for event in by_type.values():
        assert (event["trace_id"], event["span_id"]) == (trace_id, span_id)
    [record] = records
    assert record.getMessage() == "total=10"
    assert (record.otelTraceID, record.otelSpanID) == (trace_id, span_id)  # type: ignore[attr-defined]


def test_a_fastapi_request_traced_by_an_outer_middleware(
    capturing: Harness, tracing: Tuple[Tracer, InMemorySpanExporter]
) -> None:
    tracer, exporter = tracing
    app = FastAPI()

    @app.get("/pay")
    async def pay() -> Dict[str, Any]:
        amount = 250
        charge(amount)
        return {}

    async def traced(scope: Any, receive: Any, send: Any) -> None:
        # Where OpenTelemetry's ASGI instrumentation puts its span: around the whole app.
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with tracer.start_as_current_span("GET /pay", record_exception=False):
            await app(scope, receive, send)

    with serve_asgi(traced) as url:
        assert httpx.get(f"{url}/pay").status_code == 500
    [event] = capturing.events
    [finished] = exporter.get_finished_spans()
    assert event["origin"] == "starlette"
    assert event["trace_id"] == f"{finished.context.trace_id:032x}"
    assert [e.name for e in finished.events] == ["peephole.snapshot"]


def test_without_opentelemetry_in_the_app_nothing_of_it_is_imported() -> None:
    script = textwrap.dedent(
        """
        import json, logging, sys
        import peephole

        events = []
        agent = peephole.start(service="no-otel")
        agent.sink = lambda batch: events.extend(batch) or True
        try:
            raise ValueError("x")
        except ValueError:
            logging.getLogger("x").exception("y")
        agent.flush()
        loaded = [m for m in ("opentelemetry", "flask", "django", "starlette", "fastapi")
                  if m in sys.modules]
        print(json.dumps({"types": [e["type"] for e in events], "loaded": loaded}))
        peephole.stop()
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"types": ["exception"], "loaded": []}


def test_otel_helpers_are_quiet_without_a_span() -> None:
    from peephole.agent import otel

    assert trace.get_current_span().is_recording() is False
    assert otel.trace_ids() is None
    otel.add_span_event("peephole.snapshot", {"peephole.event_id": "x"})  # no span: nothing
