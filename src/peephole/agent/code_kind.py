"""Which code a file holds: the application's, an installed library's, the standard
library's, or the agent's own. One rule for exception snapshots (which frames are the
application's, which are dropped) and the source view (which files are listed, in what order).
"""

from __future__ import annotations

import os
import sysconfig
from typing import Dict, Tuple

__all__ = ["AGENT", "APP", "LIBRARY", "STDLIB", "code_kind", "code_kinds"]

APP = "app"
STDLIB = "stdlib"
LIBRARY = "site-packages"  # the word exception frames carry in their "library" field
AGENT = "agent"
_LIBRARY_DIRS = ("site-packages", "dist-packages")
# peephole's agent package: its frames are the agent's own, never the application's
_AGENT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _stdlib_dirs() -> Tuple[str, ...]:
    """The interpreter's library folders, as ``os`` was found and as sysconfig names them."""
    paths = sysconfig.get_paths()
    found = {os.path.dirname(os.__file__), os.path.dirname(os.path.realpath(os.__file__))}
    found.update(p for p in (paths.get("stdlib"), paths.get("platstdlib")) if p)
    return tuple(os.path.normpath(p) + os.sep for p in found)


_STDLIB_DIRS = _stdlib_dirs()
code_kinds: Dict[str, str] = {}  # filename -> kind: read first by the exception hot path


def code_kind(filename: str) -> str:
    """:data:`APP`, :data:`LIBRARY`, :data:`STDLIB` or :data:`AGENT` for a code object's
    ``co_filename`` or a module's ``__file__``."""
    kind = code_kinds.get(filename)
    if kind is not None:
        return kind
    if filename.startswith("<frozen "):
        kind = STDLIB
    elif filename.startswith(_AGENT_DIR):
        kind = AGENT
    elif any(part in _LIBRARY_DIRS for part in filename.replace("\\", "/").split("/")):
        kind = LIBRARY
    elif os.path.normpath(os.path.abspath(filename)).startswith(_STDLIB_DIRS):
        kind = STDLIB
    else:
        kind = APP
    if len(code_kinds) > 4096:
        code_kinds.clear()
    code_kinds[filename] = kind
    return kind
