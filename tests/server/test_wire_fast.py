"""The decoder's orjson path gives what the exact path gives, and hands it what orjson
would get wrong (test_wire checks the results against ``json.loads`` on random messages)."""

from __future__ import annotations

import json

import pytest

from peephole.server import wire

pytestmark = pytest.mark.server


def test_orjson_path_is_taken_for_an_ordinary_message() -> None:
    event = {"id": "0" * 24, "v": [1.5, "x", 10**18 - 1]}  # digit runs in text are fine
    text = json.dumps({"type": "events", "seq": 1, "events": [event]})
    fast = wire._fast(text)
    assert fast is not None
    assert fast == json.loads(text)
    assert fast.raw_events == [json.dumps(event, separators=(",", ":"))]


@pytest.mark.parametrize(
    "value",
    [
        2**70,  # orjson reads it as a float
        -(2**64) - 1,
        "\ud800",  # a lone surrogate, which orjson refuses
    ],
)
@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_what_orjson_gets_wrong_takes_the_exact_path(
    value: object, separators: tuple[str, str]
) -> None:
    event = {"id": "a", "v": value}
    text = json.dumps({"type": "events", "events": [event, [1, value]]}, separators=separators)
    assert wire._fast(text) is None
    text = json.dumps({"type": "events", "seq": 1, "events": [event]}, separators=separators)
    assert wire._fast(text) is None
    decoded = wire.decode(text)
    kept = "\ufffd" if value == "\ud800" else value  # storage never holds a lone surrogate
    assert decoded["events"][0]["v"] == kept
    assert json.loads(decoded.raw_events[0]) == {"id": "a", "v": kept}
