"""From ``file.py:LINE`` as a person wrote it to the code objects and instructions to arm.

The file is matched by :mod:`.paths`, the line mapped to its statement by
:mod:`.statements`, and the live code objects come from the :mod:`.registry`: the outermost
code objects whose instructions belong to the statement are the targets, with the
instructions where control enters the statement.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence

from peephole.agent.placement.paths import (
    LocateError,
    modules_of,
    resolve_file,
    spellings,
)
from peephole.agent.placement.registry import REGISTRY, CodeIndex
from peephole.agent.placement.statements import (
    Entry,
    Ins,
    SourceMap,
    Unit,
    code_lines,
    nearest_text,
    no_code_text,
    source_map,
    statement_entries,
)

__all__ = ["CodeLocation", "Resolution", "locate"]

CodeType = types.CodeType


class NoCodeYet(LocateError):
    """The line is in a function, but no live function holds it (yet): retried."""

    heals = True


@dataclass
class CodeLocation:
    """Where to arm one probe in one code object: the keys of the instructions where its
    statement starts, and how control reaches each (for backends that place code there)."""

    code: CodeType
    keys: List[Hashable]
    entries: Dict[Hashable, Entry] = field(default_factory=dict)


@dataclass
class Resolution:
    path: str
    line: int
    targets: List[CodeLocation]
    index: CodeIndex


def locate(
    path: str,
    line: int,
    instructions: Callable[[CodeType], Sequence[Ins]],
    unwrap: Callable[[CodeType], CodeType],
    finished: Optional[str] = None,
) -> Resolution:
    """Resolve ``path:line`` to the instructions to arm, or raise why it cannot be done.

    ``finished`` names a file whose module body has just run (or is about to run with its
    code known to the registry): it counts as loaded although the import is not over.
    """
    filename = resolve_file(path, finished)
    source = module_source_map(filename)
    unit = source.unit_at(line) if source is not None else None
    if source is not None and (unit is None or not unit.has_code):
        raise LocateError(no_code_text(line, source))
    index = REGISTRY.index(spellings(filename), unwrap)
    if source is None or unit is None:
        raise LocateError(f"the source of {filename} cannot be read, so line {line} is unknown")
    targets = _outermost(_targets(index, source, unit, instructions), index)
    if not targets:
        raise _why_nothing(filename, line, source, unit)
    return Resolution(filename, line, targets, index)


def _targets(
    index: CodeIndex,
    source: SourceMap,
    unit: Unit,
    instructions: Callable[[CodeType], Sequence[Ins]],
) -> Dict[int, CodeLocation]:
    found: Dict[int, CodeLocation] = {}
    for code in index.codes.values():
        if not any(unit.first <= n <= unit.last for n in code_lines(code)):
            continue
        entries = statement_entries(instructions(code), source, unit)
        if entries:
            keys = [e.key for e in entries]
            found[id(code)] = CodeLocation(code, keys, {e.key: e for e in entries})
    return found


def _outermost(found: Dict[int, CodeLocation], index: CodeIndex) -> List[CodeLocation]:
    """A line in both a function and a lambda or comprehension inside it is one statement of
    the function. A module or class body (known only while its import runs) never hides the
    functions in it: ``f = lambda: ...`` runs once at import and then at every call."""
    return [
        target
        for target in found.values()
        if not any(
            id(parent) in found and is_function(parent) for parent in index.ancestors(target.code)
        )
    ]


def is_function(code: CodeType) -> bool:
    """Function code (its own locals), not a module or class body."""
    return bool(code.co_flags & inspect.CO_NEWLOCALS)


def _why_nothing(filename: str, line: int, source: SourceMap, unit: Unit) -> LocateError:
    if unit.kind in ("FunctionDef", "AsyncFunctionDef", "ClassDef") and not unit.in_function:
        return LocateError(
            f"line {line} of {filename} is a {unit.kind.replace('Def', '').lower()} "
            "statement, which ran once when the module was imported; place the probe on "
            "a line of its body. " + nearest_text(line, source)
        )
    if not unit.in_function:
        return LocateError(
            f"line {line} of {filename} is module-level or class-level code, which ran "
            "once when the module was imported; place the probe inside a function"
        )
    return NoCodeYet(
        f"line {line} of {filename} is not in any loaded function "
        "(the code may have been replaced or never defined); " + nearest_text(line, source)
    )


def module_source_map(filename: str) -> Optional[SourceMap]:
    """The statements of a loaded file; its loader supplies the text when it is no plain
    file (a zip archive, say)."""
    modules = modules_of([filename])
    return source_map(filename, vars(modules[0]) if modules else None)
