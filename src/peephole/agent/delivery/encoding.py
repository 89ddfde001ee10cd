"""Events as JSON on the delivery thread: each encoded once, in slices the application can
interleave with.

A batch of a hundred snapshots is half a megabyte of JSON. Encoded by one ``json.dumps`` call
it holds the GIL for tens of milliseconds, and every application thread that wants to run
waits that long. So each event is encoded on its own (which also gives its exact size, to pack
messages under the protocol's limit without encoding anything twice), and after every
``SLICE_BYTES`` of output the delivery thread sleeps for ``PAUSE`` seconds: a thread that
waits for the GIL takes it then, instead of at the next switch interval (5 ms). The pause is
not zero: ``sleep(0)`` frees the GIL for so short a time that the thread it wakes usually
finds it taken again, and then waits a whole interval more.

``orjson``, a dependency of the agent, encodes the events 7-14 times faster than ``json`` on
3.9 to 3.13 (``docs/benchmarks.md``). Where it cannot be imported (a platform without its
wheels, installed with ``--no-deps``), or for an event it refuses (an integer over 64 bits, a
lone surrogate), ``json`` encodes the event to the same JSON value. Both are imported on first
use, by the delivery thread, so neither adds to the application's start-up.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

from peephole import protocol

__all__ = ["encode_events", "encoder", "events_message", "library", "stdlib_dumps"]

Dumps = Callable[[Dict[str, Any]], bytes]

SLICE_BYTES = 8 * 1024  # about 0.15 ms of json's work, 15 us of orjson's, between pauses
PAUSE = 0.0001  # seconds; a batch of 1 MB waits about 15 ms more, using no CPU
_dumps: Optional[Dumps] = None


def stdlib_dumps(event: Dict[str, Any]) -> bytes:
    """One event with ``json``: what :func:`peephole.protocol.encode` writes, as bytes."""
    return protocol.encode(event).encode()


def _load_orjson() -> Optional[Dumps]:
    try:
        import orjson
    except ImportError:
        return None
    # Typed by hand: the two lines below are the only use of orjson.
    orjson_dumps: Callable[..., bytes] = orjson.dumps
    refused = orjson.JSONEncodeError

    def orjson_then_stdlib(event: Dict[str, Any]) -> bytes:
        try:
            return orjson_dumps(event, default=_type_name)
        except refused:
            return stdlib_dumps(event)

    return orjson_then_stdlib


def _type_name(value: object) -> str:
    """What ``protocol.encode`` writes for a value JSON cannot take."""
    return f"<{type(value).__name__}>"


def encoder() -> Dumps:
    """The fastest encoder installed (chosen once)."""
    global _dumps
    if _dumps is None:
        _dumps = _load_orjson() or stdlib_dumps
    return _dumps


def library() -> str:
    """``"orjson"`` or ``"json"``: which library encodes the events (for the benchmarks)."""
    return "json" if encoder() is stdlib_dumps else "orjson"


def encode_events(
    events: Iterable[Dict[str, Any]], slice_bytes: int = SLICE_BYTES
) -> Iterator[bytes]:
    """Each event as UTF-8 JSON, releasing the GIL after every ``slice_bytes`` of output."""
    dumps = encoder()
    done = 0
    for event in events:
        data = dumps(event)
        done += len(data)
        if done >= slice_bytes:
            done = 0
            time.sleep(PAUSE)
        yield data


def events_message(seq: int, events: List[bytes], dropped: int) -> bytes:
    """An ``events`` message (:class:`peephole.messages.Events`) around events already
    encoded (see :func:`encode_events`), as UTF-8 JSON made in one piece: a batch is
    hundreds of kilobytes, and each buffer that size is fresh memory the kernel maps page by
    page while the delivery thread holds the GIL (a joined body, then a str of it, then the
    message, then its bytes again took a millisecond on a virtual machine)."""
    parts = [b'{"type":"events","seq":%d,"events":[' % seq]
    for data in events:
        parts.append(data)
        parts.append(b",")
    if events:
        parts.pop()
    parts.append(b'],"dropped":%d}' % dropped)
    return b"".join(parts)
