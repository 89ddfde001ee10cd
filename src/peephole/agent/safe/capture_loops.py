"""The inner loops of a capture, in Python: a mapping's entries, named values, a sequence's
items, a stack and its frames' records.

Each loop does the common case itself (a str key or name seen before, a short str or a small
int or a bool value) and hands every other value to the capture's own code for it (``walk``,
``entry``, ``secret``).
``peephole.agent._speedups`` has the same three loops in C (see ``speedups.py``), which the
capture uses where they are built: a snapshot spends most of its time in these loops.

Nothing here runs code of the application: the dicts looked up are the capture's own caches,
keyed by exact strs, and the values compared are exact ints and strs.
"""

from __future__ import annotations

from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = [
    "CodeInfo",
    "KeyInfo",
    "frame_records",
    "item_nodes",
    "mapping_entries",
    "named_values",
    "stack_of",
]

_CARD_SIZED = 10**12  # ints shorter than this cannot be card numbers: shown without a check
_MINUS_CARD_SIZED = -_CARD_SIZED

# A str dict key: its node, JSON size, secret name?, the last value under it, its entry, size.
KeyInfo = Tuple[Dict[str, Any], int, bool, Any, Any, int]
# A code object's record for its frames: the code, the record, its JSON size, the globals.
CodeInfo = Tuple[Optional[Any], Dict[str, Any], int, Any]
_NO_CODE: CodeInfo = (None, {}, 0, None)  # what a code not seen yet finds


def mapping_entries(
    pairs: Sequence[Tuple[Any, Any]],
    keys: Dict[str, KeyInfo],
    key_info: Callable[[str], KeyInfo],
    scalars: Dict[Any, Tuple[Any, int]],
    show: bool,
    entry_of: Callable[[Any, Any, Any, int, Any], Tuple[List[Any], int]],
    depth: int,
    location: Any,
) -> Tuple[List[List[Any]], int]:
    """The ``[key node, value node]`` entries of ``pairs`` and the bytes they add.

    ``keys`` holds what a str key looks like (see ``Capturer.keys``) and the entry last made
    under it; ``key_info(key)`` works out a key seen for the first time and keeps it there
    (unless it is too long to keep). With ``show`` (not inside a secret collection) an
    unchanged value reuses the key's entry, and a new short value's entry replaces it.
    ``entry_of(key, info, item, depth, (location, index))`` makes any other entry (a secret
    key, a value to walk, a key that is not a str, whose ``info`` is None) and returns it
    with the bytes it adds besides its value's walk."""
    entries: List[List[Any]] = []
    append = entries.append
    size = 0
    known_key = keys.get
    known_scalar = scalars.get
    for key, item in pairs:
        info = None
        if type(key) is str:
            info = known_key(key)
            if info is None:
                info = key_info(key)
                keep = show and key in keys
            else:
                keep = show
            key_node, key_size, key_secret, last, entry, entry_size = info
            # The value shown under the key last time (the same object, or, both exact ints
            # or strs, an equal one: comparing them runs no foreign code): its entry again.
            if last is item and show:
                size += entry_size
                append(entry)
                continue
            cls = type(item)
            value = None
            if cls is str:
                if last == item and show:
                    size += entry_size
                    append(entry)
                    continue
                value = known_scalar(item)
            elif cls is int:
                if last == item and show:
                    size += entry_size
                    append(entry)
                    continue
                if _MINUS_CARD_SIZED < item < _CARD_SIZED:
                    # A short int's node is made, not looked up: it cannot be secret.
                    value = {"t": "int", "v": item}, 36
            if value is not None and not key_secret:
                entry = [key_node, value[0]]
                entry_size = key_size + value[1]
                size += entry_size
                append(entry)
                if keep:
                    keys[key] = (key_node, key_size, False, item, entry, entry_size)
                continue
        entry, added = entry_of(key, info, item, depth, (location, len(entries)))
        size += added
        append(entry)
    return entries, size


def named_values(
    pairs: Sequence[Tuple[Any, Any]],
    out: Dict[str, Any],
    limit: int,
    names: Dict[str, int],
    name_info: Callable[[str], int],
    scalars: Dict[Any, Tuple[Any, int]],
    walk: Callable[[Any, int, Any, Any], Dict[str, Any]],
    depth: int,
    location: Any,
    secret: Callable[[str, Any, int, Any], Tuple[Dict[str, Any], int]],
) -> Tuple[int, int, int]:
    """Fill ``out`` with up to ``limit`` named values (locals or fields); return how many
    were shown, how many skipped (names that are not strs, dunders) and the bytes added.

    ``names`` holds what a name costs (``name_info`` works it out the first time): -1 a
    dunder, 0 a secret name, else its size. ``walk(item, depth, location, name)`` makes the
    node of any other value; ``secret(name, item, depth, location)`` that of a value under
    a secret name, with the bytes it adds."""
    known_name = names.get
    known_scalar = scalars.get
    shown = skipped = size = 0
    for name, item in pairs:
        if type(name) is not str:
            skipped += 1
            continue
        known = known_name(name)
        if known is None:
            known = name_info(name)
        if known < 0:
            skipped += 1  # a dunder
            continue
        if shown >= limit:
            break
        shown += 1
        if known == 0:
            out[name], added = secret(name, item, depth, location)
            size += added
            continue
        size += known
        # The common scalar values inline: a call per value is most of the cost.
        cls = type(item)
        if cls is str:
            value = known_scalar(item)
            if value is not None:
                size += value[1]
                out[name] = value[0]
                continue
        elif cls is int:
            if _MINUS_CARD_SIZED < item < _CARD_SIZED:
                size += 36
                out[name] = {"t": "int", "v": item}
                continue
        elif cls is bool:
            size += 24
            out[name] = {"t": "bool", "v": item}
            continue
        out[name] = walk(item, depth, location, name)
    return shown, skipped, size


def item_nodes(
    shown: Sequence[Any],
    scalars: Dict[Any, Tuple[Any, int]],
    walk: Callable[[Any, int, Any, Any], Dict[str, Any]],
    depth: int,
    location: Any,
) -> Tuple[List[Dict[str, Any]], int]:
    """The value nodes of ``shown`` and the bytes they add; ``walk(item, depth, location,
    index)`` makes the node of any value that is not a short str seen before or a small int
    (and counts its own bytes)."""
    items: List[Dict[str, Any]] = []
    append = items.append
    known_scalar = scalars.get
    size = 0
    for item in shown:
        cls = type(item)
        if cls is str:
            value = known_scalar(item)
            if value is not None:
                size += value[1]
                append(value[0])
                continue
        elif cls is int and _MINUS_CARD_SIZED < item < _CARD_SIZED:
            size += 36
            append({"t": "int", "v": item})
            continue
        append(walk(item, depth, location, len(items)))
    return items, size


def stack_of(frame: Optional[FrameType], max_frames: int) -> List[Tuple[FrameType, int]]:
    """``frame`` and its callers, innermost first, with the line each is at."""
    stack: List[Tuple[FrameType, int]] = []
    append = stack.append
    for _ in range(max_frames):
        if frame is None:
            break
        append((frame, frame.f_lineno or 0))
        frame = frame.f_back
    return stack


def frame_records(
    frames: Sequence[Tuple[FrameType, int]],
    codes: Dict[int, CodeInfo],
    code_info: Callable[[Any, Any], CodeInfo],
) -> Tuple[List[Dict[str, Any]], int]:
    """A record (file, line, function, module) of each of ``frames`` and the bytes they take:
    a copy of the record ``codes`` keeps for the frame's code object and globals, which
    ``code_info(code, globals)`` makes the first time."""
    nodes: List[Dict[str, Any]] = []
    append = nodes.append
    size = 0
    for frame, line in frames:
        code = frame.f_code
        known_code, record, record_size, known_globals = codes.get(id(code), _NO_CODE)
        if known_code is not code or known_globals is not frame.f_globals:
            _, record, record_size, _ = code_info(code, frame.f_globals)
        node = record.copy()  # the code's record is never changed
        node["line"] = line
        size += record_size
        append(node)
    return nodes, size
