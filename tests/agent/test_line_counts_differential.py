"""Probes count exactly what a reference line counter counts, on real code, on every version.

Real modules (pure-Python standard library modules, copied under new names so only the
workloads below run them, and ``targets/iterators.py``) run twice on private copies: once
under a reference counter built on ``sys.settrace`` (here, in the test only), once with a
probe on every line that can take one. "A hit" is one execution of the statement that starts
on the line (docs/architecture.md): the reference counts a line event when the frame was
last in no part of that statement, and lets code nested in a statement (a comprehension, a
lambda, a generator expression on the function's line) count for the statement that holds it.
"""

from __future__ import annotations

import collections
import importlib
import io
import shutil
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, Callable, Counter, Dict, List, Optional, Tuple

import pytest

from conftest import TARGETS
from peephole.agent.placement.instrument import Backend, new_backend
from peephole.agent.placement.locate import locate
from peephole.agent.placement.paths import LocateError
from peephole.agent.placement.statements import SourceMap, Unit, code_lines

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CodeKey = Tuple[str, int]
PROBES = 90  # lines probed per module
IDLE_PROBES = 10  # of them, lines the workload never runs


def _textwrap(m: types.ModuleType) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 12
    m.fill(text, width=31)
    m.dedent("    a\n      b\n\n    c\n")
    m.indent("x\n\ny\n", "> ")
    m.shorten(text, width=40, placeholder=" [...]")
    m.TextWrapper(width=20, break_long_words=False, max_lines=3).wrap("z" * 50 + text)


def _shlex(m: types.ModuleType) -> None:
    m.split('a \'b c\' "d\\"e" # no\nf\\ g', comments=True)
    list(m.shlex("x && y || (z)", punctuation_chars=True))
    m.join(["a b", "c'd", ""])
    m.quote("it's")


def _difflib(m: types.ModuleType) -> None:
    a = [f"line {i}\n" for i in range(40)]
    b = [x for i, x in enumerate(a) if i % 7] + ["new\n", "line 3\n"]
    list(m.unified_diff(a, b, n=2))
    list(m.ndiff(a[:12], b[:12]))
    matcher = m.SequenceMatcher(None, "abcdefghij" * 30, "abdefxghij" * 30)
    matcher.ratio()
    matcher.get_opcodes()
    m.get_close_matches("appel", ["ape", "apple", "peach", "puppy"])


def _csv(m: types.ModuleType) -> None:
    data = "name,qty\napple,3\npear,\n,\nplum,7\n"
    list(m.DictReader(io.StringIO(data)))
    out = io.StringIO()
    writer = m.DictWriter(out, ["name", "qty"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{"name": "a", "qty": 1, "x": 2}, {"name": "b"}])
    m.Sniffer().sniff(data)


def _fractions(m: types.ModuleType) -> None:
    total = m.Fraction(0)
    for n in range(1, 25):
        total += m.Fraction(1, n) * m.Fraction("3/7") - m.Fraction(n, 11)
    total.limit_denominator(100)
    m.Fraction("1.25e-3")
    m.Fraction(2.5).as_integer_ratio()
    round(m.Fraction(7, 3), 2)
    m.Fraction(7, 3) // m.Fraction(1, 2), m.Fraction(7, 3) % 2


def _pprint(m: types.ModuleType) -> None:
    data = {f"k{i}": [list(range(i)), {"x": (i, "s" * i)}] for i in range(12)}
    m.pformat(data, width=40)
    m.pformat([data, data], depth=2, compact=True)
    m.saferepr(data)


def _iterators(m: types.ModuleType) -> None:
    for _ in range(3):
        sum(m.Countdown(30))
        m.Ledger().book(["a=1", "", "b=x", "a=5", "c=200", "d=1"])
        list(m.pairs(list(range(11))))
        m.nested(7)
        m.maybe(None), m.maybe(50)


CORPUS: Dict[str, Tuple[Path, Callable[[types.ModuleType], None]]] = {
    "textwrap": (STDLIB / "textwrap.py", _textwrap),
    "shlex": (STDLIB / "shlex.py", _shlex),
    "difflib": (STDLIB / "difflib.py", _difflib),
    "csv": (STDLIB / "csv.py", _csv),
    "fractions": (STDLIB / "fractions.py", _fractions),
    "pprint": (STDLIB / "pprint.py", _pprint),
    "iterators": (TARGETS / "iterators.py", _iterators),
}


def _copy(module_dir: Path, source: Path, name: str) -> types.ModuleType:
    shutil.copyfile(source, module_dir / f"{name}.py")
    importlib.invalidate_caches()
    return importlib.import_module(name)


def _owners(code: types.CodeType, source: SourceMap) -> Dict[int, CodeKey]:
    """The code that runs each statement: the outermost code (not the module body) with a
    line of it, as a probe is placed; a comprehension or lambda in a statement is part of it.
    """
    owners: Dict[int, CodeKey] = {}
    pending = [(code, False)]
    while pending:
        current, inside_function = pending.pop(0)
        if current.co_name != "<module>":
            for line in code_lines(current):
                unit = source.unit_at(line)
                if unit is not None and (unit.index not in owners or not inside_function):
                    owners.setdefault(unit.index, (current.co_name, current.co_firstlineno))
        is_function = bool(current.co_flags & 0x2)  # CO_NEWLOCALS: not a class body
        for const in current.co_consts:
            if isinstance(const, types.CodeType):
                pending.append((const, inside_function or is_function))
    return owners


# What sys.settrace calls: it returns the tracer for the frame's next events.
Tracer = Callable[[types.FrameType, str, Any], Any]


class Reference:
    """Counts statement entries per line from ``sys.settrace`` line events."""

    def __init__(self, filename: str, source: SourceMap, owners: Dict[int, CodeKey]) -> None:
        self.filename = filename
        self.source = source
        self.owners = owners
        self.counts: Counter[int] = collections.Counter()
        self.last: Dict[int, Tuple[types.FrameType, Optional[Unit]]] = {}

    def trace(self, frame: types.FrameType, event: str, arg: object) -> Optional[Tracer]:
        if frame.f_code.co_filename != self.filename:
            return None
        return self.local

    def local(self, frame: types.FrameType, event: str, arg: object) -> Tracer:
        if event == "line":
            self.line(frame)
        return self.local

    def line(self, frame: types.FrameType) -> None:
        code = frame.f_code
        unit = self.source.unit_at(frame.f_lineno)
        if unit is not None and self.owners.get(unit.index) != (code.co_name, code.co_firstlineno):
            return  # a comprehension's line: the statement holding it counts
        kept = self.last.get(id(frame))
        previous = kept[1] if kept is not None and kept[0] is frame else None
        self.last[id(frame)] = (frame, unit)
        if unit is None:
            return
        entered = previous is None or (
            previous.index != unit.index and unit.index not in previous.ancestors
        )
        if entered:
            self.counts[unit.first] += 1


def _reference(
    module: types.ModuleType, workload: Callable[[types.ModuleType], None]
) -> Counter[int]:
    filename = module.__file__
    assert filename is not None
    text = Path(filename).read_text()
    source = SourceMap.parse(text, filename)
    owners = _owners(compile(text, filename, "exec"), source)
    reference = Reference(filename, source, owners)
    previous = sys.gettrace()
    sys.settrace(reference.trace)
    try:
        workload(module)
    finally:
        sys.settrace(previous)
    return reference.counts


def _lines(filename: str, reference: Counter[int]) -> List[int]:
    """The first lines of statements in functions: those the workload ran, and a few it did
    not, at most ``PROBES`` (each probe rebuilds its code object on 3.9-3.11)."""
    source = SourceMap.parse(Path(filename).read_text(), filename)
    firsts = [n for n in source.probe_lines() if getattr(source.unit_at(n), "first", 0) == n]
    ran = [n for n in firsts if reference[n]]
    idle = [n for n in firsts if not reference[n]]
    return _spread(ran, PROBES - IDLE_PROBES) + _spread(idle, IDLE_PROBES)


def _spread(lines: List[int], count: int) -> List[int]:
    step = max(1, -(-len(lines) // count))
    return lines[::step]


def _probed(
    backend: Backend,
    module: types.ModuleType,
    lines: List[int],
    workload: Callable[[types.ModuleType], None],
) -> Tuple[Counter[int], List[int]]:
    filename = module.__file__
    assert filename is not None
    counts: Counter[int] = collections.Counter()
    placed: List[int] = []
    for line in lines:
        try:
            resolution = locate(filename, line, backend.instructions, backend.unwrap)
        except LocateError:
            continue

        def hook(frame: types.FrameType, line: int = line) -> None:
            counts[line] += 1

        for target in resolution.targets:
            backend.arm(target, resolution.index, hook)
        placed.append(line)
    workload(module)
    return counts, placed


@pytest.mark.parametrize("corpus", list(CORPUS))
def test_probes_count_what_a_reference_line_counter_counts(module_dir: Path, corpus: str) -> None:
    source_file, workload = CORPUS[corpus]
    reference_module = _copy(module_dir, source_file, f"differential_{corpus}_ref")
    reference = _reference(reference_module, workload)
    probed = _copy(module_dir, source_file, f"differential_{corpus}_probed")
    assert probed.__file__ is not None
    lines = _lines(probed.__file__, reference)
    backend = new_backend()
    try:
        counts, placed = _probed(backend, probed, lines, workload)
    finally:
        backend.close()
    assert sum(reference.values()) > 50  # the workload runs the module for real
    assert len(placed) > 20
    expected = {line: reference[line] for line in placed if reference[line]}
    got = {line: counts[line] for line in placed if counts[line]}
    assert got == expected
