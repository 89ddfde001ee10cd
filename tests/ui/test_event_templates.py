"""The event and exception pages render events in their REST shape (``Broker.event_view``),
where every declared field is present and ``null`` when the agent did not send it: the
pages show nothing for a missing thread, trace link or origin, and do not fail on one."""

from __future__ import annotations

from typing import Any

import pytest

from peephole import protocol
from peephole.server.api import responses
from peephole.server.ui import environment
from peephole.server.ui.events import stack

pytestmark = pytest.mark.server

ORIGIN = {"service": "shop", "instance_id": "i1"}


def _view(raw: dict[str, Any]) -> dict[str, Any]:
    return responses.event({**raw, **ORIGIN}).model_dump()


def test_a_snapshot_without_thread_or_trace_renders_without_them() -> None:
    frames = [{"file": "app.py", "line": 3, "function": "handler", "locals": {}}]
    event = _view(protocol.new_event(protocol.SNAPSHOT, probe_id="p1", frames=frames))
    assert event["thread"] is None and event["trace_link"] is None  # the REST shape
    html = environment.get_template("event.html").render(
        viewer=None,
        event=event,
        frames=stack(event["frames"]),
        frame=0,
        chosen=stack(event["frames"])[0],
        source=[],
        no_source="no source",
        older=None,
        newer=None,
        values={"n": {"t": "int", "v": 1}},
        watches={},
    )
    assert "thread" not in html and "None" not in html
    assert 'data-source="locals"' in html


def test_an_exception_without_type_or_origin_renders_without_them() -> None:
    event = _view(protocol.new_event(protocol.EXCEPTION, message="boom"))
    assert event["exc_type"] is None and event["origin"] is None
    html = environment.get_template("event.html").render(
        viewer=None,
        event=event,
        frames=[],
        frame=0,
        chosen=None,
        source=[],
        no_source="no frames",
        older=None,
        newer=None,
        values={},
        watches={},
    )
    assert "None" not in html and 'class="exc"' not in html
    group = {
        "exc_type": "ValueError",
        "message": "boom",
        "count": 1,
        "first_seen": event["time"],
        "last_seen": event["time"],
        "services": ["shop"],
        "versions": [],
        "events": [event],
    }
    html = environment.get_template("exception.html").render(
        viewer=None, group=group, chart=[0] * 24, peak=1, newest=event, frames=[]
    )
    assert "from None" not in html
