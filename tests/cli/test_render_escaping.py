"""Captured text never reaches the operator's terminal with raw control characters (issue 10
item 6): an exception message, a log line, a value or a name could rewrite the terminal."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from peephole.cli import render
from peephole.cli.common import console
from peephole.client import Event, ExceptionGroupDetail

HOSTILE = "boom\x1b[2J\x1b]0;pwned\x07\r\x9b31m\u202eevil\x08"
# After printing, only line breaks may remain of the control characters (Rich adds none with
# colours off); the escaped forms are visible instead.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_event(kind: str) -> Event:
    value = {"t": "str", "v": HOSTILE}
    frame = {
        "file": f"app{HOSTILE}.py",
        "line": 3,
        "function": f"f{HOSTILE}",
        "module": HOSTILE,
        "locals": {
            f"name{HOSTILE}": value,
            "raw": {"t": "bytes", "v": HOSTILE, "len": 4},
            "d": {"t": "dict", "len": 1, "entries": [[value, value]]},
            "o": {"t": f"T{HOSTILE}", "fields": {HOSTILE: value}},
        },
    }
    data: dict[str, Any] = {
        "id": "e1",
        "type": kind,
        "time": 1.0,
        "service": f"svc{HOSTILE}",
        "instance_id": HOSTILE,
        "probe_id": "p1",
        "file": f"app{HOSTILE}.py",
        "line": 3,
        "message": HOSTILE,
        "exc_type": f"Err{HOSTILE}",
        "level": "info",
        "thread": HOSTILE,
        "frames": [frame],
        "watches": [{"expr": HOSTILE, "value": value}, {"expr": "x", "error": HOSTILE}],
        "chain": [{"exc_type": "Cause", "message": HOSTILE}],
    }
    return Event.from_dict(data)


def printed(capsys: pytest.CaptureFixture[str], renderable: Any) -> str:
    console().print(renderable)
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", ["snapshot", "exception", "log"])
def test_event_views_escape_control_characters(
    capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    event = hostile_event(kind)
    for renderable in (render.snapshot(event), render.events([event]), render.event_line(event)):
        out = printed(capsys, renderable)
        assert RAW_CONTROL.search(out) is None, repr(out)
        assert "\\x1b" in out


def test_exception_groups_escape_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    group = ExceptionGroupDetail.from_dict(
        {
            "fingerprint": "f",
            "exc_type": "E",
            "message": HOSTILE,
            "count": 1,
            "services": [HOSTILE],
            "events": [],
        }
    )
    for renderable in (render.exceptions([group]), render.exception_group(group)):
        out = printed(capsys, renderable)
        assert RAW_CONTROL.search(out) is None, repr(out)


def test_printable_escapes_and_keeps_ordinary_text() -> None:
    assert render.printable("naïve café ✓") == "naïve café ✓"
    assert render.printable("a\nb\tc\x1b\u202e") == "a\\nb\\tc\\x1b\\u202e"


def test_json_output_escapes_c1_controls_and_bidi_overrides(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from peephole.cli.common import print_json

    print_json({"message": HOSTILE})
    out = capsys.readouterr().out
    assert RAW_CONTROL.search(out) is None, repr(out)
    assert json.loads(out) == {"message": HOSTILE}
