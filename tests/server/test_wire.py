"""The agent-message decoder that keeps each event's text: same result as ``json.loads``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peephole import protocol
from peephole.server import wire

pytestmark = pytest.mark.server

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
events = st.lists(st.dictionaries(st.text(), values, max_size=5), max_size=5)


@given(
    events=events,
    extra=st.dictionaries(st.text(), values, max_size=3),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
)
def test_decode_matches_json_and_keeps_each_event_text(
    events: list[dict[str, Any]], extra: dict[str, Any], indent: Any, ascii_only: bool
) -> None:
    message = {**extra, "type": "events", "events": events}
    text = json.dumps(message, indent=indent, ensure_ascii=ascii_only)
    decoded = wire.decode(text)
    assert decoded == json.loads(text)
    assert [json.loads(raw) for raw in decoded.raw_events] == events


def strict_json(text: str) -> Any:
    """``json.loads`` without NaN and Infinity, which are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


@given(
    st.text(max_size=30)
    | st.sampled_from(
        ['{"type": "x", "v": NaN}', '{"type": "x", "v": [-Infinity]}', '{"type": Infinity}']
    )
)
def test_decode_refuses_what_json_refuses(text: str) -> None:
    try:
        expected = strict_json(text)
    except ValueError:
        with pytest.raises(protocol.ProtocolError):
            wire.decode(text)
        return
    if isinstance(expected, dict) and isinstance(expected.get("type"), str):
        assert wire.decode(text) == expected
    else:
        with pytest.raises(protocol.ProtocolError):
            wire.decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{",
        '{"type": 1}',
        '{"type": "x"} x',
        '{"type": "x",}',
        '{"events": [1,], "type": "x"}',
        b"\xff\xfe",
    ],
)
def test_decode_errors(text: Any) -> None:
    with pytest.raises(protocol.ProtocolError):
        wire.decode(text)
