"""Models read the server's JSON, tolerate fields they do not know and give it back as is."""

from __future__ import annotations

import json
from pathlib import Path

from peephole.client import Event, NewProbe, Probe, Target
from peephole.client.api import stream_message, stream_url, update_probe

GOLDEN = Path(__file__).parent.parent / "cli" / "golden"

PROBE = json.loads((GOLDEN / "probe.json").read_text(encoding="utf-8"))


def test_probe_from_dict() -> None:
    probe = Probe.from_dict(PROBE)
    assert probe.location == "shop/cart.py:42"
    assert probe.target == Target(service="shop", environment="prod", tags={"r": "eu"})
    assert probe.target.describe() == "service shop, env prod, r=eu"
    assert [s.message for s in probe.errors()] == ["no code at line 42"]
    assert json.loads(json.dumps(probe.to_dict())) == PROBE


def test_event_keeps_its_payload() -> None:
    raw = json.loads((GOLDEN / "snapshot_event.json").read_text())
    event = Event.from_dict(raw)
    assert (event.type, event.file, event.line, event.probe_id) == (
        "snapshot",
        "shop/cart.py",
        42,
        "9e8d7c6b",
    )
    assert event.frames[0]["function"] == "add_item"
    assert event.watches[1]["error"] == "name 'user' is not defined"
    assert event.to_dict() is raw


def test_new_probe_request_body() -> None:
    body = NewProbe(
        "logpoint", "a.py", 3, template="x={x}", target=Target(service="shop", instances=["i1"])
    ).to_request()
    assert body["template"] == "x={x}" and body["expire_seconds"] is None
    assert body["target"] == {
        "service": "shop",
        "version": None,
        "environment": None,
        "tags": {},
        "instances": ["i1"],
    }


def test_update_refuses_unknown_fields() -> None:
    import pytest

    from peephole.client import InvalidRequest

    with pytest.raises(InvalidRequest, match="invalid kind: cannot be changed"):
        update_probe("ab12", {"kind": "logpoint"})
    assert update_probe("a/b", {"hit_limit": 5}).path == "/api/v1/probes/a%2Fb"


def test_stream_url_and_messages() -> None:
    assert stream_url("https://h:1/base/", "t k", service="shop") == (
        "wss://h:1/base/api/v1/stream?token=t+k&service=shop"
    )
    assert stream_url("http://h:1", None) == "ws://h:1/api/v1/stream"
    event = stream_message(json.dumps({"type": "event", "event": {"id": "e1", "type": "log"}}))
    assert isinstance(event, Event) and event.id == "e1"
    probe = stream_message(json.dumps({"type": "probe", "probe": PROBE}))
    assert isinstance(probe, Probe) and probe.id == "ab12"
    assert stream_message('{"type": "hello"}') is None


def test_models_import_on_the_oldest_python() -> None:
    """The client declares Python 3.9: its models once used ``field(kw_only=True)`` (3.10+)
    and failed to import there. The agent's 3.9 venv has no httpx, so only the models."""
    import subprocess

    python = Path(__file__).resolve().parents[2] / ".venvs" / "py3.9" / "bin" / "python"
    code = "from peephole.client.models import Event, Probe; print(Probe.from_dict(%r).id)"
    run = subprocess.run(
        [str(python), "-c", code % PROBE], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == PROBE["id"]
