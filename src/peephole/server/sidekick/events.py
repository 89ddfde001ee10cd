"""Sidekick events (one a frame) as peephole events: snapshot, log, exception.

Times come in epoch milliseconds, Node's frame lines are 0-based (V8's; Node 0.0.8 only
below the top frame), and nothing is redacted by these agents: the values, log lines and
error messages are redacted here, before they are stored or shown.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any, Optional

from peephole import protocol
from peephole.agent.safe.redaction import Redactor
from peephole.server.sidekick.identity import NODE
from peephole.server.sidekick.values import Budget, variables

__all__ = ["bare_id", "exception", "frames", "log", "probe_id", "snapshot"]

MAX_FRAMES = 100  # an agent sends at most 20
PYTHON_CLASS = re.compile(r"<class '([^']+)'>")
PROBE_ID_PREFIXES = ("Tracepoint:", "Logpoint:")  # Node 0.0.8 sends its internal keys


def probe_id(frame: dict[str, Any]) -> Optional[str]:
    """The probe an event belongs to (its id as the server sent it)."""
    found = frame.get("tracePointId") or frame.get("logPointId")
    return bare_id(found) if isinstance(found, str) else None


def bare_id(probe_id: str) -> str:
    """A probe id without the ``Tracepoint:``/``Logpoint:`` prefix Node 0.0.8 adds."""
    for prefix in PROBE_ID_PREFIXES:
        if probe_id.startswith(prefix):
            return probe_id[len(prefix) :]
    return probe_id


def snapshot(
    frame: dict[str, Any], spec: protocol.ProbeSpec, runtime: str, redactor: Redactor
) -> dict[str, Any]:
    return protocol.new_event(
        protocol.SNAPSHOT,
        **_common(frame),
        probe_id=spec.id,
        probe_version=spec.version,
        file=spec.file,
        line=spec.line,
        frames=frames(frame, runtime, redactor),
        watches=[],
    )


def log(frame: dict[str, Any], spec: protocol.ProbeSpec, redactor: Redactor) -> dict[str, Any]:
    message = frame.get("logMessage")
    return protocol.new_event(
        protocol.LOG,
        **_common(frame),
        probe_id=spec.id,
        file=spec.file,
        line=spec.line,
        level=spec.level,  # Node and Python send no level with the line
        message=redactor.mask(message if isinstance(message, str) else ""),
        errors=[],
    )


def exception(frame: dict[str, Any], runtime: str, redactor: Redactor) -> dict[str, Any]:
    error = frame.get("error")
    if not isinstance(error, dict):
        error = {}
    exc_type = str(error.get("name") or "Error")
    named = PYTHON_CLASS.fullmatch(exc_type)  # Python's agent sends "<class 'ValueError'>"
    if named is not None:
        exc_type = named.group(1)
    exc_type = redactor.mask(exc_type)
    message = redactor.mask(str(error.get("message") or ""))
    found = frames(frame, runtime, redactor)
    for item in found:
        item["app"] = True
    if not found:  # without capture-frame the agent sends only where it was thrown
        found = [_frame(frame, runtime, redactor, Budget(), top=True)]
        found[0]["app"] = True
    where = f"{runtime}:{exc_type}:{found[0].get('file')}:{frame.get('methodName')}"
    return protocol.new_event(
        protocol.EXCEPTION,
        **_common(frame),
        fingerprint=hashlib.sha256(where.encode()).hexdigest()[:32],
        exc_type=exc_type,
        message=message,
        frames=found,
        chain=[],
        origin="sidekick",
        count=1,
    )


def frames(frame: dict[str, Any], runtime: str, redactor: Redactor) -> list[dict[str, Any]]:
    """The stack, innermost first; Node's lines made 1-based; its values share one budget."""
    items = frame.get("frames")
    if not isinstance(items, list):
        return []
    probe_line = frame.get("lineNo")
    out = []
    budget = Budget()
    for index, item in enumerate(items[:MAX_FRAMES]):
        if isinstance(item, dict):
            top = index == 0 and item.get("lineNo") == probe_line
            out.append(_frame(item, runtime, redactor, budget, top))
    return out


def _frame(
    item: dict[str, Any], runtime: str, redactor: Redactor, budget: Budget, top: bool
) -> dict[str, Any]:
    """One stack frame; every text the agent sent in it is masked."""
    line = item.get("lineNo")
    line = line if isinstance(line, int) and not isinstance(line, bool) else 0
    if runtime == NODE and not top:  # Node 0.0.8 put the probe's own line in the top frame
        line += 1
    file = item.get("fileName") or item.get("className") or ""
    result: dict[str, Any] = {
        "file": redactor.mask(str(file)),
        "line": line,
        "function": redactor.mask(str(item.get("methodName") or "")),
        "module": redactor.mask(str(item.get("className") or file)),
    }
    if isinstance(item.get("variables"), dict):
        result["locals"] = variables(item["variables"], redactor, budget)
    return result


def _common(frame: dict[str, Any]) -> dict[str, Any]:
    """Id, time (ms -> s) and trace ids of the event."""
    sent = frame.get("time")
    when = sent / 1000 if isinstance(sent, (int, float)) and not isinstance(sent, bool) else None
    own = frame.get("id")
    common: dict[str, Any] = {
        "id": own.replace("-", "")
        if isinstance(own, str) and 0 < len(own) <= 64
        else uuid.uuid4().hex,
        "time": when if when is not None and 0 <= when <= 1e11 else time.time(),
    }
    for source, target in (("traceId", "trace_id"), ("spanId", "span_id")):
        if isinstance(frame.get(source), str) and frame[source]:
            common[target] = frame[source][:64]
    return common
