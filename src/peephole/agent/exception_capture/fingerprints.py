"""Exception fingerprints: which failures are "the same" (which frames are the application's:
:mod:`peephole.agent.code_kind`).

A fingerprint is computed once per traceback *shape* (the types and code locations it passes
through, read cheaply as ids) and cached, so a new failure of a known shape costs a tuple and a
dict look-up; a failure that repeats its class's last shape costs one walk of its traceback.
"""

from __future__ import annotations

import hashlib
import os
import threading
from types import FrameType, TracebackType
from typing import Dict, List, Optional, Set, Tuple

from peephole.agent import speedups
from peephole.agent.code_kind import APP
from peephole.agent.safe.access import type_info

__all__ = [
    "Stack",
    "after_fork_in_child",
    "fingerprint_of",
    "known_fingerprints",
    "module_name",
    "remember_fingerprint",
    "remember_shape",
    "repeated_fingerprint",
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


def shape_of(
    chain: List[Tuple[BaseException, Optional[TracebackType]]],
) -> Tuple[Tuple[int, ...], List[object], List[int]]:
    """What the fingerprint depends on, cheap to read: the exceptions' types and, for each
    traceback entry, its code object and instruction. Returns the cache key (the types' and
    code objects' ids, then the instructions, -1 for a type), those objects (which the cache
    keeps alive so their ids cannot be reused) and the instructions."""
    owners: List[object] = []
    lastis: List[int] = []
    add_owner = owners.append
    add_lasti = lastis.append
    for exc, tb in chain:
        add_owner(type(exc))
        add_lasti(-1)
        while tb is not None:
            add_owner(tb.tb_frame.f_code)
            add_lasti(tb.tb_lasti)
            tb = tb.tb_next
    return (*map(id, owners), *lastis), owners, lastis


# shape -> fingerprint. The types and code objects of each shape are held in _shape_owners so
# that their ids cannot be reused by other objects while the shape is cached.
known_fingerprints: Dict[Tuple[int, ...], str] = {}
_shape_owners: Dict[Tuple[int, ...], List[object]] = {}
MAX_SHAPES = 1024
_shapes_lock = threading.Lock()

# id(exception class) -> (the class, ((code, instruction), ...) of the last traceback of an
# exception of that class without a cause or context, its fingerprint). A failure that
# repeats is recognised by comparing its traceback with these as it is walked: no key to build
# and hash. Held strongly, like _shape_owners; replaced by the class's next other shape.
_last_shapes: Dict[int, Tuple[type, Tuple[Tuple[object, int], ...], str]] = {}


def repeated_fingerprint(
    chain: List[Tuple[BaseException, Optional[TracebackType]]],
) -> Optional[str]:
    """The fingerprint of ``chain`` if it is one exception whose traceback is the last one
    remembered for its class (:func:`remember_shape`), else None."""
    if len(chain) != 1:
        return None
    exc, tb = chain[0]
    cls = type(exc)
    last = _last_shapes.get(id(cls))
    if last is None or last[0] is not cls:
        return None
    return last[2] if same_traceback(tb, last[1]) else None


def _same_traceback(tb: Optional[TracebackType], entries: Tuple[Tuple[object, int], ...]) -> bool:
    """Whether ``tb`` has one entry per item of ``entries``, each in that code object at that
    instruction (``_speedups.same_traceback`` is this, in C)."""
    try:
        for code, lasti in entries:
            if tb.tb_frame.f_code is not code or tb.tb_lasti != lasti:  # type: ignore[union-attr]
                return False
            tb = tb.tb_next  # type: ignore[union-attr]
    except AttributeError:  # tb is None: this traceback is shorter (no test per entry)
        return False
    return tb is None


same_traceback = speedups.same_traceback or _same_traceback


def remember_shape(
    chain: List[Tuple[BaseException, Optional[TracebackType]]],
    owners: List[object],
    lastis: List[int],
    fingerprint: str,
) -> None:
    """Remember the shape of a single exception's traceback (``owners`` and ``lastis`` from
    :func:`shape_of`) as its class's last, for :func:`repeated_fingerprint`."""
    if len(chain) != 1:
        return
    cls = type(chain[0][0])
    entries = tuple(zip(owners[1:], lastis[1:]))
    if len(_last_shapes) >= MAX_SHAPES:
        _last_shapes.clear()
    _last_shapes[id(cls)] = (cls, entries, fingerprint)


def remember_fingerprint(shape: Tuple[int, ...], fingerprint: str, owners: List[object]) -> None:
    with _shapes_lock:
        if len(known_fingerprints) >= MAX_SHAPES:
            known_fingerprints.clear()
            _shape_owners.clear()
        _shape_owners[shape] = owners
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
