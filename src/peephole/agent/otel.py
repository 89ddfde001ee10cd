"""OpenTelemetry trace context, read only when the application already uses OpenTelemetry.

The agent never imports ``opentelemetry`` itself: if the application has not imported it,
there is no span to link to and these functions cost a dict lookup. docs/exceptions.md
describes what is linked and how.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional, Tuple

from peephole.agent.health import internal_error

__all__ = ["TRACE_MODULE", "add_snapshot_event", "add_span_event", "log_extra", "trace_ids"]

SNAPSHOT_SPAN_EVENT = "peephole.snapshot"
TRACE_MODULE = "opentelemetry.trace"  # not in sys.modules: trace_ids() is None


def trace_ids() -> Optional[Tuple[str, str]]:
    """The current recording span's ``(trace_id, span_id)`` as hex, or None."""
    trace = sys.modules.get(TRACE_MODULE)
    if trace is None:
        return None
    try:
        span = trace.get_current_span()
        context = span.get_span_context()
        if not context.is_valid or not span.is_recording():
            return None
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"
    except Exception as exc:  # a tracer that fails: the event goes without its trace
        internal_error("reading the current trace", exc)
        return None


def log_extra(ids: Optional[Tuple[str, str]]) -> Optional[Dict[str, Any]]:
    """``extra=`` for a ``logging`` record, with the attribute names OpenTelemetry's logging
    instrumentation uses, so log pipelines correlate logpoint lines with their trace."""
    if ids is None:
        return None
    return {"otelTraceID": ids[0], "otelSpanID": ids[1], "otelTraceSampled": True}


def add_span_event(name: str, attributes: Dict[str, Any]) -> None:
    """Add an event to the current recording span, if there is one."""
    trace = sys.modules.get(TRACE_MODULE)
    if trace is None:
        return
    try:
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(name, attributes=attributes)
    except Exception as exc:
        internal_error("adding a span event", exc)


def add_snapshot_event(event: Dict[str, Any]) -> None:
    """Add ``peephole.snapshot`` with the id of ``event`` (a snapshot or an exception
    snapshot) to the current recording span, so the trace points to the snapshot."""
    if TRACE_MODULE not in sys.modules:
        return
    attributes = {"peephole.event_id": event.get("id"), "peephole.event_type": event.get("type")}
    for key in ("probe_id", "fingerprint"):
        value = event.get(key)
        if isinstance(value, str):
            attributes[f"peephole.{key}"] = value
    add_span_event(SNAPSHOT_SPAN_EVENT, attributes)
