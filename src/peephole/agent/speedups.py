"""The agent's optional C speed-ups, or ``None`` for each one this interpreter lacks.

``_speedups`` is compiled from ``_speedups.c`` at install where a C compiler is found (see
setup.py); every part of the agent that uses it has a pure-Python equivalent with the same
behaviour, as coverage.py has its CTracer and PyTracer. Set ``PEEPHOLE_NO_SPEEDUPS=1`` to
use the pure-Python parts even where the C ones are built (the test suite runs both).
"""

from __future__ import annotations

import importlib
import os
from types import FrameType, ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

__all__ = [
    "DISABLED",
    "InjectedCall",
    "InstructionCallback",
    "frame_records",
    "frame_vars",
    "item_nodes",
    "mapping_entries",
    "named_values",
    "same_traceback",
    "stack_of",
]

DISABLED = os.environ.get("PEEPHOLE_NO_SPEEDUPS", "") not in ("", "0")


def _load() -> Optional[ModuleType]:
    if DISABLED:
        return None
    try:
        return importlib.import_module("peephole.agent._speedups")
    except ImportError:  # not compiled here: no compiler at install, or an unusual platform
        return None


_module = _load()
# 3.9-3.11: what injected code calls (Site.call of placement/instrument/__init__.py), in C.
InjectedCall: Optional[
    Callable[[Any, Callable[[str, BaseException], None]], Callable[[], None]]
] = getattr(_module, "InjectedCall", None)
# 3.12+: the sys.monitoring INSTRUCTION callback of placement/instrument/monitoring.py, in C.
InstructionCallback: Optional[Callable[..., Callable[[Any, int], Any]]] = getattr(
    _module, "InstructionCallback", None
)
# 3.9, 3.10, 3.12: a frame's variables read one at a time, not all copied to f_locals
# (3.11 has no public way to; 3.13's frame.f_locals already is a view).
frame_vars: Optional[Callable[[FrameType], Mapping[str, Any]]] = getattr(
    _module, "frame_vars", None
)
# Every version: the inner loops of a capture (safe/capture_loops.py is their Python).
mapping_entries: Optional[Callable[..., Tuple[List[List[Any]], int]]] = getattr(
    _module, "mapping_entries", None
)
named_values: Optional[Callable[..., Tuple[int, int, int]]] = getattr(_module, "named_values", None)
item_nodes: Optional[Callable[..., Tuple[List[Dict[str, Any]], int]]] = getattr(
    _module, "item_nodes", None
)
stack_of: Optional[Callable[[Optional[FrameType], int], List[Tuple[FrameType, int]]]] = getattr(
    _module, "stack_of", None
)
frame_records: Optional[Callable[..., Tuple[List[Dict[str, Any]], int]]] = getattr(
    _module, "frame_records", None
)
same_traceback: Optional[Callable[[Any, Tuple[Tuple[object, int], ...]], bool]] = getattr(
    _module, "same_traceback", None
)
