"""What the agents say about their probes -> peephole probe states and messages."""

from __future__ import annotations

import pytest

from peephole import protocol
from peephole.agent.safe.redaction import Redactor
from peephole.server.sidekick import status
from sidekick.fixture_frames import frames


def test_the_recorded_line_failure_reads_the_peephole_way() -> None:
    recorded = [f for _, f in frames("agent", "PutTracePointFailedEvent")]
    assert any(n.startswith("python-") for n, _ in frames("agent", "PutTracePointFailedEvent"))
    for frame in recorded:
        change = status.event_change("PutTracePointFailedEvent", frame)
        assert change is not None and change.state == protocol.ERROR
        assert change.message is not None
        assert change.message.startswith("line 8 is not available; try 7 or 1")


def test_refused_answers_become_errors_with_the_agents_reason() -> None:
    refused = [f for _, f in frames("agent") if f.get("type") == "Response" and f["erroneous"]]
    assert len(refused) >= 3  # Node's missing script, both agents' unknown id on remove
    for frame in refused:
        change = status.response_change(frame)
        assert change.state == protocol.ERROR
        assert change.message is not None and frame["errorMessage"][:40] in change.message
        assert f"(Sidekick error {frame['errorCode']})" in change.message


def test_taken_answers_and_already_held_probes_are_active() -> None:
    taken = [f for _, f in frames("agent") if f.get("type") == "Response" and not f["erroneous"]]
    assert taken
    for frame in taken:
        assert status.response_change(frame).state == protocol.ACTIVE
    again = {"erroneous": True, "errorCode": 2000, "errorMessage": "already exists"}
    assert status.response_change(again).state == protocol.ACTIVE


@pytest.mark.parametrize(
    "name, state, failed_hit",
    [
        ("PutTracePointFailedEvent", protocol.ERROR, False),
        ("PutLogPointFailedEvent", protocol.ERROR, False),
        ("TracePointSnapshotFailedEvent", None, True),
        ("LogPointFailedEvent", None, True),
        ("ProbeRateLimitEvent", protocol.THROTTLED, False),
        ("TracePointRateLimitEvent", protocol.THROTTLED, False),
        ("LogPointRateLimitEvent", protocol.THROTTLED, False),
    ],
)
def test_failure_and_rate_limit_events(name: str, state: str | None, failed_hit: bool) -> None:
    documented = [f for _, f in frames("agent", name)]
    assert documented, f"no fixture frame for {name}"
    change = status.event_change(name, documented[0])
    assert change is not None and change.state == state and change.failed_hit == failed_hit
    assert change.message


def test_exception_notices_are_no_probe_changes() -> None:
    for name in status.EXCEPTION_NOTICES:
        assert frames("agent", name), f"no fixture frame for {name}"
        assert status.event_change(name, frames("agent", name)[0][1]) is None


@pytest.mark.parametrize(
    "name, kind",
    [
        ("PutTracePointFailedEvent", "tracepoint"),
        ("LogPointFailedEvent", "logpoint"),
        ("ProbeRateLimitEvent", None),
    ],
)
def test_event_kind(name: str, kind: str | None) -> None:
    assert status.event_kind(name) == kind


def test_every_recorded_status_list_is_read() -> None:
    found = frames("agent", "ApplicationStatusEvent")
    assert len(found) > 10
    lists = [status.listed(f) for _, f in found]
    assert all(isinstance(held, dict) for held in lists)
    ids = {i for held in lists if held for i in held}
    assert "/app.js::11::SessionGroup" in ids  # Node's list, also after 0.0.8's prefix
    assert "shop.py?ref=0123abc::13::SessionGroup" in ids


def test_same_file() -> None:
    assert status.same_file("shop.py?ref=", "shop.py?ref=0123abc")
    assert status.same_file("/app.js", "/app.js")
    assert status.same_file("/app.js", "app.js")
    assert not status.same_file("/app.js", "/other.js")
    assert not status.same_file("/app.js", "")


def test_error_text_without_a_message() -> None:
    expected = "the agent refused the probe (Sidekick error 1004)"
    assert status.error_text({"errorCode": 1004}) == expected


SECRET = "password=hunter2-s3cr3t"


def test_agent_error_messages_are_masked() -> None:
    frame = {"errorMessage": f"cannot put, {SECRET}", "errorCode": 2050, "erroneous": True}
    assert "hunter2" not in status.error_text(frame)
    assert "hunter2" not in str(status.response_change(frame).message)
    change = status.event_change("PutTracePointFailedEvent", frame)
    assert change is not None and "hunter2" not in str(change.message)
    policy = Redactor(patterns=["topsecret"])
    assert "topsecret" not in status.error_text({"errorMessage": "x topsecret"}, policy)
