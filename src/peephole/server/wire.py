"""Decoding agent messages, keeping each event's JSON text as it arrived.

Events are stored as the agent's JSON text. Parsing a batch and serializing every event
again would double the JSON work of ingest (most of its cost), so :func:`decode` walks the
top-level object itself with the C scanner of :mod:`json` and records the text span of each
element of ``"events"`` while parsing it: one pass, same results as ``json.loads``.

With orjson installed (a server dependency), :func:`decode` parses with it first, five times
faster, and each event's text is orjson's compact encoding of the same value. orjson reads an
integer wider than 64 bits as a float, so a text with a number of 19 digits or more takes
the exact path, as does anything orjson refuses (lone surrogates, numbers out of range): that path
decides what is accepted, with the error it gives.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Union

from peephole import protocol

try:
    import orjson
except ImportError:  # pragma: no cover - a server dependency; the exact path works alone
    orjson = None  # type: ignore[assignment]

__all__ = ["Message", "decode"]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# NaN and Infinity are not JSON: Python's parser takes them, databases and clients do not.
_scan = json.JSONDecoder(parse_constant=_no_constants).scan_once  # type: ignore[attr-defined]
_space = re.compile(r"[ \t\n\r]*")
# An integer of 19 digits or more may be one orjson reads as a float (beyond 64 bits). The
# text is mapped to "S" (what may precede a number), "0" (digits) and "x", and searched for
# an "S" then 19 "0": 20 times faster than a regular expression, as fast as bytes allow.
_NUMBER_SHAPE = bytes(
    ord("0") if c in b"0123456789" else ord("S") if c in b":,[ \t\n\r-" else ord("x")
    for c in range(256)
)
_WIDE_NUMBER = b"S" + b"0" * 19


class Message(dict):  # type: ignore[type-arg]
    """A decoded message; for ``events`` messages, ``raw_events`` holds each event's text."""

    raw_events: list[str]


def decode(data: Union[str, bytes]) -> Message:
    """Like :func:`peephole.protocol.decode` (size, JSON, object with a ``type``)."""
    if len(data) > protocol.MAX_MESSAGE_BYTES:
        raise protocol.ProtocolError(
            f"message of {len(data)} bytes exceeds {protocol.MAX_MESSAGE_BYTES}"
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise protocol.ProtocolError(f"not UTF-8: {exc}") from None
    try:
        message = _fast(data) or _parse(data)
    except StopIteration as exc:
        raise protocol.ProtocolError(f"not JSON: no value at {exc.value}") from None
    except (ValueError, IndexError) as exc:
        raise protocol.ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message.get("type"), str):
        raise protocol.ProtocolError("a message must be a JSON object with a string 'type'")
    return message


def _fast(text: str) -> Optional[Message]:
    """The message parsed by orjson, or None to take the exact path."""
    if orjson is None:
        return None
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate: the exact path says what is wrong
        return None
    if _WIDE_NUMBER in data.translate(_NUMBER_SHAPE):
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    message = Message(value)
    events = value.get("events")
    message.raw_events = (
        [orjson.dumps(event).decode() for event in events] if isinstance(events, list) else []
    )
    return message


def _parse(text: str) -> Message:
    message = Message()
    message.raw_events = []
    at = _space.match(text, 0).end()  # type: ignore[union-attr]
    if text[at : at + 1] != "{":
        _scan(text, at)  # not JSON at all raises here; other JSON is answered below
        return Message()
    at = _space.match(text, at + 1).end()  # type: ignore[union-attr]
    if text[at] == "}":
        at += 1
    else:  # a loop over "key": value pairs
        while True:
            if text[at] != '"':
                raise ValueError(f"expected a key at {at}")
            key, at = _scan(text, at)
            at = _space.match(text, at).end()  # type: ignore[union-attr]
            if text[at] != ":":
                raise ValueError(f"expected ':' at {at}")
            at = _space.match(text, at + 1).end()  # type: ignore[union-attr]
            if key == "events" and text[at] == "[":
                message[key], message.raw_events, at = _array_with_spans(text, at)
            else:
                message[key], at = _scan(text, at)
            at = _space.match(text, at).end()  # type: ignore[union-attr]
            if text[at] == "}":
                at += 1
                break
            if text[at] != ",":
                raise ValueError(f"expected ',' or '}}' at {at}")
            at = _space.match(text, at + 1).end()  # type: ignore[union-attr]
    if _space.match(text, at).end() != len(text):  # type: ignore[union-attr]
        raise ValueError(f"extra data at {at}")
    return message


def _array_with_spans(text: str, at: int) -> tuple[list[Any], list[str], int]:
    items: list[Any] = []
    spans: list[str] = []
    at = _space.match(text, at + 1).end()  # type: ignore[union-attr]
    if text[at] == "]":
        return items, spans, at + 1
    while True:
        item, end = _scan(text, at)
        items.append(item)
        spans.append(text[at:end])
        at = _space.match(text, end).end()  # type: ignore[union-attr]
        if text[at] == "]":
            return items, spans, at + 1
        if text[at] != ",":
            raise ValueError(f"expected ',' or ']' at {at}")
        at = _space.match(text, at + 1).end()  # type: ignore[union-attr]
