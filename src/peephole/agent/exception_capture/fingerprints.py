"""Exception fingerprints: which failures are "the same" (which frames are the application's:
:mod:`peephole.agent.code_kind`).

A fingerprint is computed once per traceback *shape* (the types and code locations it passes
through, read cheaply as ids) and cached, so a repeated failure costs a tuple and a dict look-up.
"""

from __future__ import annotations

import hashlib
import os
import threading
from types import FrameType, TracebackType
from typing import Dict, List, Optional, Set, Tuple

from peephole.agent.code_kind import APP
from peephole.agent.safe.access import type_info

__all__ = [
    "Stack",
    "after_fork_in_child",
    "fingerprint_of",
    "known_fingerprints",
    "module_name",
    "remember_fingerprint",
    "shape_of",
    "type_name",
]

Stack = List[Tuple[FrameType, int, str]]  # (frame, line, kind), innermost first


def type_name(cls: type) -> str:
    return type_info(cls).name


def module_name(frame: FrameType) -> str:
    name = frame.f_globals.get("__name__") if type(frame.f_globals) is dict else None
    if type(name) is str:
        return name
    return os.path.splitext(os.path.basename(frame.f_code.co_filename))[0]


# --- fingerprints --------------------------------------------------------------------------


def shape_of(chain: List[Tuple[BaseException, Optional[TracebackType]]]) -> Tuple[int, ...]:
    """What the fingerprint depends on, cheap to read: the exceptions' types and, for each
    traceback entry, its code object and instruction (ids; the cache keeps them alive)."""
    shape: List[int] = []
    for exc, tb in chain:
        shape.append(id(type(exc)))
        while tb is not None:
            shape.append(id(tb.tb_frame.f_code))
            shape.append(tb.tb_lasti)
            tb = tb.tb_next
        shape.append(-1)
    return tuple(shape)


# shape -> fingerprint. The types and code objects of each shape are held in _shape_owners so
# that their ids cannot be reused by other objects while the shape is cached.
known_fingerprints: Dict[Tuple[int, ...], str] = {}
_shape_owners: Dict[Tuple[int, ...], Tuple[object, ...]] = {}
MAX_SHAPES = 1024
_shapes_lock = threading.Lock()


def remember_fingerprint(
    shape: Tuple[int, ...],
    fingerprint: str,
    chain: List[Tuple[BaseException, Optional[TracebackType]]],
) -> None:
    owners: List[object] = []
    for exc, tb in chain:
        owners.append(type(exc))
        while tb is not None:
            owners.append(tb.tb_frame.f_code)
            tb = tb.tb_next
    with _shapes_lock:
        if len(known_fingerprints) >= MAX_SHAPES:
            known_fingerprints.clear()
            _shape_owners.clear()
        _shape_owners[shape] = tuple(owners)
        known_fingerprints[shape] = fingerprint


def fingerprint_of(
    chain: List[Tuple[BaseException, Optional[TracebackType]]], stacks: List[Stack]
) -> str:
    """sha1 of each chained exception's type and the code locations of its application
    frames: module, function and line *within the function* (so code added above the
    function does not split a group). Repeated locations (recursion) count once. Without
    application frames, the library frames' module and function (no lines: they change
    with library versions)."""
    parts: List[str] = []
    for (exc, _), stack in zip(chain, stacks):
        parts.append(type_name(type(exc)))
        has_app = any(kind == APP for _, _, kind in stack)
        seen: Set[str] = set()
        for frame, line, kind in stack:
            if has_app and kind != APP:
                continue
            code = frame.f_code
            where = f"{module_name(frame)}:{code.co_name}"
            if has_app:
                where = f"{where}:{line - code.co_firstlineno}"
            if where not in seen:
                seen.add(where)
                parts.append(where)
    return hashlib.sha1("\n".join(parts).encode("utf-8", "replace")).hexdigest()[:16]


def after_fork_in_child() -> None:
    """A new lock in a forked child: another thread of the parent may have held it."""
    global _shapes_lock
    _shapes_lock = threading.Lock()
