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

Two things are refused or repaired for every message, whichever path parsed it: values nested
deeper than :data:`MAX_DEPTH` (the API's JSON encoder, Pydantic's, fails past ~255 levels, so one
such event would break every page showing it), and lone UTF-16 surrogates (``"\\udcff"``, which
the agent's stdlib fallback sends for undecodable bytes): they become U+FFFD in the values and
in the stored text, since neither UTF-8 databases nor the API's encoder take them.
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

__all__ = ["MAX_DEPTH", "Message", "decode", "may_hold_surrogates", "without_lone_surrogates"]

# Levels of arrays and objects a message may nest, itself included. An agent's deepest value
# (max_depth 20, three JSON levels each) with its event and frame stays well below it.
MAX_DEPTH = 128
_ORJSON_DEPTH = 254  # the most levels orjson.dumps writes (tests/server/test_wire_hostile.py)
_WRAPS = _ORJSON_DEPTH - (MAX_DEPTH - 2)


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
# A lone surrogate, or the escape of one (an escaped backslash before "ud8.." only costs a
# needless repair walk): pairs are joined by the parser, so any surrogate left is lone.
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


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
    too_deep = protocol.ProtocolError(f"values nested deeper than {MAX_DEPTH} levels")
    try:
        message = _fast(data)
        exact = message is None
        if message is None:
            message = _parse(data)
    except RecursionError:
        raise too_deep from None
    except StopIteration as exc:
        raise protocol.ProtocolError(f"not JSON: no value at {exc.value}") from None
    except (ValueError, IndexError) as exc:
        raise protocol.ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message.get("type"), str):
        raise protocol.ProtocolError("a message must be a JSON object with a string 'type'")
    if _too_deep(message, data, exact):
        raise too_deep
    if exact and may_hold_surrogates(data):
        message = _without_surrogates(message)
    return message


def _too_deep(message: Message, text: str, exact: bool) -> bool:
    """Whether ``message`` nests more than :data:`MAX_DEPTH` levels. The fast path measured
    the events while writing them (see :func:`_event_texts`): what is left of an ``events``
    message is a few numbers, walked at once; counting a batch's brackets first cost more
    (2 us a snapshot). Other messages are walked only when they hold that many brackets."""
    if not exact and isinstance(message.get("events"), list):
        return _deeper({k: v for k, v in message.items() if k != "events"}, MAX_DEPTH)
    return text.count("[") + text.count("{") > MAX_DEPTH and _deeper(message, MAX_DEPTH)


def _deeper(value: dict[str, Any], limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels: level by level, without recursion."""
    level: list[Any] = [dict(value)]
    for _ in range(limit):
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if type(child) in (dict, list)
        ]
        if not level:
            return False
    return True


def _without_surrogates(message: Message) -> Message:
    """``message`` with lone surrogates replaced by U+FFFD, its events' texts written again."""
    fixed = Message(without_lone_surrogates(dict(message)))
    events = fixed.get("events")
    fixed.raw_events = (
        [json.dumps(event, separators=(",", ":")) for event in events]
        if isinstance(events, list) and message.raw_events
        else []
    )
    return fixed


def without_lone_surrogates(value: Any) -> Any:
    """``value`` (parsed JSON) with every lone surrogate replaced by U+FFFD: no database
    column or response encoder takes one."""
    if type(value) is str:
        return _SURROGATE.sub("\ufffd", value)
    if type(value) is list:
        return [without_lone_surrogates(item) for item in value]
    if type(value) is dict:
        return {
            without_lone_surrogates(key): without_lone_surrogates(v) for key, v in value.items()
        }
    return value


def may_hold_surrogates(text: str) -> bool:
    """Whether JSON ``text`` may decode to a lone surrogate (a cheap search, no parse)."""
    return _MAYBE_SURROGATE.search(text) is not None


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
    texts = _event_texts(events) if isinstance(events, list) else []
    if texts is None:
        return None
    message.raw_events = texts
    return message


def _event_texts(events: list[Any]) -> Optional[list[str]]:
    """Each event's text, or None when one nests deeper than a message may (the exact path
    refuses it). The depth is measured by orjson's own limit while writing: each event is
    written inside as many arrays as leave it ``MAX_DEPTH - 2`` levels (the message and its
    ``events`` hold it), ten times cheaper than walking the values."""
    slot: list[Any] = [None]
    outer: list[Any] = slot
    for _ in range(_WRAPS - 1):
        outer = [outer]
    texts = []
    for event in events:
        slot[0] = event
        try:
            text = orjson.dumps(outer)
        except orjson.JSONEncodeError:
            return None
        texts.append(text[_WRAPS:-_WRAPS].decode())
    return texts


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
