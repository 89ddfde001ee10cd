"""The statements of a source file, and where control enters one in a code object.

A line is mapped to the *statement* that contains it, and a probe fires once each time
control enters that statement from outside it. Interpreters disagree on how many line
events a multi-line statement produces (3.9 revisits the first line after the arguments;
3.10+ do not), so counting statement entries is what makes "one hit per execution of the
statement" hold on every version: re-entries from within the statement (the call after its
arguments, a generator resuming after ``yield``, a loop jumping back from its own body) do
not count.
"""

from __future__ import annotations

import ast
import dis
import linecache
import sys
import types
import warnings
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Hashable, List, NamedTuple, Optional, Sequence, Set, Tuple

__all__ = [
    "Entry",
    "Ins",
    "SourceMap",
    "Unit",
    "code_lines",
    "nearest_text",
    "no_code_text",
    "source_lines",
    "source_map",
    "statement_entries",
]

OUTSIDE = -1  # the unit of instructions that belong to no statement of interest


def source_lines(filename: str, module_globals: Optional[Dict[str, Any]] = None) -> List[str]:
    """The text of a file; ``module_globals`` lets its loader supply it (zip archives)."""
    return linecache.getlines(filename, module_globals)


@dataclass
class Unit:
    """A statement (or ``except``/``case`` clause) and the lines that belong to it."""

    index: int
    first: int
    last: int  # last line of the statement itself (the header, for compound statements)
    depth: int
    ancestors: FrozenSet[int]
    in_function: bool  # False: module or class body, which ran at import
    has_code: bool
    kind: str  # the AST node's class name: "Assign", "FunctionDef", "ExceptHandler"...


_NO_CODE = (ast.Global, ast.Nonlocal)


class SourceMap:
    """The statements of one source file, by line."""

    def __init__(self, units: List[Unit]) -> None:
        self.units = units
        self.by_line: Dict[int, Unit] = {}
        for unit in sorted(units, key=lambda u: u.depth):
            for line in range(unit.first, unit.last + 1):
                current = self.by_line.get(line)
                if current is None or current.depth < unit.depth:
                    self.by_line[line] = unit

    @classmethod
    def parse(cls, text: str, filename: str = "<source>") -> SourceMap:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename)
        units: List[Unit] = []
        _collect(tree, units, (), 0, False)
        return cls(units)

    def unit_at(self, line: int) -> Optional[Unit]:
        return self.by_line.get(line)

    def probe_lines(self) -> List[int]:
        """Lines where a probe can go: statements inside functions that compile to code."""
        return sorted(
            line for line, unit in self.by_line.items() if unit.in_function and unit.has_code
        )

    def nearest(self, line: int) -> List[int]:
        """The closest probe-able lines before and after ``line``."""
        lines = self.probe_lines()
        before = [n for n in lines if n < line]
        after = [n for n in lines if n > line]
        return ([before[-1]] if before else []) + ([after[0]] if after else [])


def _collect(
    node: ast.AST, units: List[Unit], ancestors: Tuple[int, ...], depth: int, in_function: bool
) -> None:
    body_fields = ("body", "orelse", "finalbody", "handlers", "cases")
    for name, value in ast.iter_fields(node):
        if name not in body_fields or not isinstance(value, list):
            continue
        for index, child in enumerate(value):
            if (
                not isinstance(child, (ast.stmt, ast.excepthandler))
                and type(child).__name__ != "match_case"
            ):
                continue
            first = _first_line(child)
            last = _header_end(child, first)
            docstring = (
                index == 0
                and name == "body"
                and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and isinstance(child, ast.Expr)
                and isinstance(child.value, ast.Constant)
                and isinstance(child.value.value, str)
            )
            unit = Unit(
                index=len(units),
                first=first,
                last=last,
                depth=depth,
                ancestors=frozenset(ancestors),
                in_function=in_function,
                has_code=not docstring and not isinstance(child, _NO_CODE),
                kind=type(child).__name__,
            )
            units.append(unit)
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            _collect(child, units, (*ancestors, unit.index), depth + 1, inner)


def _first_line(node: ast.AST) -> int:
    line: int = getattr(node, "lineno", None) or 0
    if not line:  # match_case has no position of its own
        line = getattr(getattr(node, "pattern", None), "lineno", 1)
    for decorator in getattr(node, "decorator_list", ()):
        line = min(line, decorator.lineno)
    return line


def _header_end(node: ast.AST, first: int) -> int:
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.AST):
        start = _first_line(body[0])
        return max(start - 1, getattr(node, "lineno", first), first)
    return max(getattr(node, "end_lineno", None) or first, first)


class Ins(NamedTuple):
    """One instruction, as far as statement analysis needs it."""

    key: Hashable  # offset (dis) or position (bytecode library)
    line: Optional[int]
    falls_through: bool  # execution can continue to the next instruction
    targets: Tuple[Hashable, ...]  # keys this instruction can jump to
    prologue: bool  # RESUME/MAKE_CELL/... before the first statement
    raises_to: Tuple[Hashable, ...] = ()  # handlers an exception here goes to (3.11+ tables)


class Entry(NamedTuple):
    """One instruction where control can enter a statement from outside it, and how.

    Re-entries from inside the statement (``jumps_within``: a loop jumping back to its
    header, say) land on the same instruction on some versions; a backend that places a
    call there must let them pass by it.
    """

    key: Hashable
    falls_in: bool  # reaching it by falling through (or starting the code) is an entry
    jumps_in: Tuple[Hashable, ...]  # jump instructions that enter the statement here
    jumps_within: Tuple[Hashable, ...]  # jump instructions from inside it that land here
    caught_in: bool = False  # an exception raised outside the statement is handled here


def statement_entries(instrs: Sequence[Ins], source: SourceMap, unit: Unit) -> List[Entry]:
    """The instructions where control enters ``unit`` from outside it, with how it does."""
    units = _units(instrs, source)
    if unit.index not in units:
        return []
    jumpers: Dict[Hashable, List[int]] = {}
    raisers: Dict[Hashable, List[int]] = {}
    for position, ins in enumerate(instrs):
        for target in ins.targets:
            jumpers.setdefault(target, []).append(position)
        for handler in ins.raises_to:
            raisers.setdefault(handler, []).append(position)

    def outside(other: int) -> bool:
        return other == OUTSIDE or (
            other != unit.index and unit.index not in source.units[other].ancestors
        )

    entries: List[Entry] = []
    for position, ins in enumerate(instrs):
        if units[position] != unit.index:
            continue
        sources = jumpers.get(ins.key, [])
        caught = raisers.get(ins.key, [])
        falls = position == 0 or instrs[position - 1].falls_through
        falls_in = position == 0 or (falls and outside(units[position - 1]))
        jumps_in = tuple(instrs[q].key for q in sources if outside(units[q]))
        within = tuple(instrs[q].key for q in sources if not outside(units[q]))
        caught_in = any(outside(units[q]) for q in caught)
        if falls_in or jumps_in or caught_in or not (falls or sources or caught):
            entries.append(Entry(ins.key, falls_in or not falls, jumps_in, within, caught_in))
    return entries


def _units(instrs: Sequence[Ins], source: SourceMap) -> List[int]:
    """The statement of each instruction. An instruction without a line (a jump the compiler
    added) belongs to the innermost statement holding every instruction that reaches it."""
    position_of = {ins.key: position for position, ins in enumerate(instrs)}
    reached_from: Dict[int, List[int]] = {}
    for position, ins in enumerate(instrs):
        if ins.falls_through and position + 1 < len(instrs):
            reached_from.setdefault(position + 1, []).append(position)
        for target in (*ins.targets, *ins.raises_to):
            if target in position_of:
                reached_from.setdefault(position_of[target], []).append(position)
    units: List[Optional[int]] = []
    for ins in instrs:
        if ins.prologue:
            units.append(OUTSIDE)
        elif ins.line is None:
            units.append(None)
        else:
            found = source.unit_at(ins.line)
            units.append(found.index if found is not None else OUTSIDE)
    lineless = [p for p, u in enumerate(units) if u is None]
    for _ in range(len(lineless)):  # each pass settles at least one link of a chain
        changed = False
        for position in lineless:
            known = [units[q] for q in reached_from.get(position, ()) if units[q] is not None]
            common = _innermost_common(known, source) if known else None
            if common is not None and common != units[position]:
                units[position] = common
                changed = True
        if not changed:
            break
    return [OUTSIDE if u is None else u for u in units]


def _innermost_common(indexes: Sequence[Optional[int]], source: SourceMap) -> int:
    """The innermost statement that is or holds each of ``indexes``."""
    common: Optional[Set[int]] = None
    for index in indexes:
        if index is None or index == OUTSIDE:
            return OUTSIDE
        around = {index, *source.units[index].ancestors}
        common = around if common is None else common & around
    if not common:
        return OUTSIDE
    return max(common, key=lambda i: source.units[i].depth)


def code_lines(code: types.CodeType) -> Set[int]:
    """The lines that have instructions in ``code`` (not in the code nested in it)."""
    if sys.version_info >= (3, 10):
        return {line for _, _, line in code.co_lines() if line is not None}
    return {line for _, line in dis.findlinestarts(code)}


_MAPS: Dict[str, Tuple[str, Optional[SourceMap]]] = {}
_MAPS_SIZE = 64


def source_map(
    filename: str, module_globals: Optional[Dict[str, Any]] = None
) -> Optional[SourceMap]:
    """The statements of a file, parsed once per version of its text."""
    text = "".join(source_lines(filename, module_globals))
    if not text:
        return None
    cached = _MAPS.get(filename)
    if cached is not None and cached[0] == text:
        return cached[1]
    try:
        parsed: Optional[SourceMap] = SourceMap.parse(text, filename)
    except (SyntaxError, ValueError):
        parsed = None
    if len(_MAPS) >= _MAPS_SIZE:
        _MAPS.clear()
    _MAPS[filename] = (text, parsed)
    return parsed


def no_code_text(line: int, source: SourceMap) -> str:
    return f"no code at line {line}; " + nearest_text(line, source)


def nearest_text(line: int, source: SourceMap) -> str:
    nearest = source.nearest(line)
    if not nearest:
        return "the file has no lines that can take a probe"
    return "nearest lines with code: " + ", ".join(str(n) for n in nearest)
