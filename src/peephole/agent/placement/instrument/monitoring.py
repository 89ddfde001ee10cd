"""Python 3.12+: ``sys.monitoring`` (PEP 669) LINE events on probed code objects only.

Events are enabled per code object (``set_local_events``), never globally, so code without
probes runs at full speed. A LINE event on a line without a probe returns ``DISABLE``,
which switches that one location off; ``restart_events()`` is never called because it
would re-enable every tool's disabled locations in the whole process. Arming a new line in
a code object switches its events off and on again, which re-arms its disabled locations.

Frames that are already running see a newly armed line (checked on 3.12 and 3.13,
generators and coroutines included).
"""

from __future__ import annotations

import dis
import sys
import types
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from peephole.agent import speedups
from peephole.agent.health import internal_error
from peephole.agent.placement.instrument import Backend, Hook, Listings, Site, Unavailable
from peephole.agent.placement.locate import CodeLocation
from peephole.agent.placement.registry import CodeIndex
from peephole.agent.placement.statements import Ins

__all__ = ["TOOL_PREFERENCE", "MonitoringBackend"]

# new_backend() imports this module on 3.12+ only; the assert also keeps type checkers for
# older versions out of the rest of it.
assert sys.version_info >= (3, 12)

CodeType = types.CodeType
TOOL_NAME = "peephole"
# 0 debuggers, 1 coverage, 2 profilers, 5 optimizers by convention; 3 is used by hypothesis.
TOOL_PREFERENCE = (4, 3, 2, 5, 1, 0)
PROLOGUE = frozenset({"RESUME", "MAKE_CELL", "COPY_FREE_VARS", "RETURN_GENERATOR"})
TERMINATORS = frozenset(
    {
        "RETURN_VALUE",
        "RETURN_CONST",
        "RAISE_VARARGS",
        "RERAISE",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP",
        "JUMP_NO_INTERRUPT",
    }
)
JUMPS = frozenset(getattr(dis, "hasjump", ())) | frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
# 3.13.0 fires no LINE event for a body on the ``def`` line (or a lambda) unless PY_START
# is enabled too; there the probe is fired from PY_START instead.
ONE_LINERS_NEED_PY_START = sys.version_info[:2] == (3, 13)


def instructions(code: CodeType) -> List[Ins]:
    """The instructions of ``code`` by offset, for statement analysis."""
    result: List[Ins] = []
    in_prologue = True
    previous = ""
    handlers = _handlers(code)
    for ins in dis.get_instructions(code):
        name = ins.opname
        if in_prologue and not (
            (name in PROLOGUE and (name != "RESUME" or ins.arg == 0))
            or (name == "POP_TOP" and previous == "RETURN_GENERATOR")
        ):
            in_prologue = False
        previous = name
        positions = ins.positions
        line = positions.lineno if positions is not None else None
        targets = (ins.argval,) if ins.opcode in JUMPS and isinstance(ins.argval, int) else ()
        falls = name not in TERMINATORS
        result.append(
            Ins(ins.offset, line, falls, targets, in_prologue, handlers.get(ins.offset, ()))
        )
    return result


def _handlers(code: CodeType) -> Dict[int, Tuple[int, ...]]:
    """For each offset an exception table entry covers: the handler it goes to."""
    handlers: Dict[int, Tuple[int, ...]] = {}
    entries: Any = getattr(dis.Bytecode(code), "exception_entries", ())  # 3.11+
    for entry in entries:
        for offset in range(entry.start, entry.end, 2):
            handlers[offset] = (entry.target,)
    return handlers


def line_of(code: CodeType, offset: int) -> Optional[int]:
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line
    return None


def line_callback(lines: Dict[int, Dict[int, Dict[int, Site]]], disable: Any) -> Callable[..., Any]:
    """The LINE callback over ``lines`` (id(code) -> line -> offset -> site): ``disable`` for
    a line without probes, else the hooks of the statement the frame is at (its ``f_lasti``).
    ``_speedups.LineCallback`` is this, in C."""
    getframe = sys._getframe

    def on_line(code: CodeType, line: int) -> Any:
        try:
            table = lines.get(id(code))
            if table is None:
                return disable
            sites = table.get(line)
            if sites is None:
                return disable
            frame = getframe(1)
            site = sites.get(frame.f_lasti)
            if site is not None:
                for hook in site.hooks:  # Site.fire, inlined: one call less per hit
                    hook(frame)
        except Exception as exc:  # free when nothing fails: a handler costs nothing
            internal_error("the line callback", exc)
        return None

    return on_line


class MonitoringBackend(Backend):
    name = "sys.monitoring"

    def __init__(self) -> None:
        self._monitoring: Any = sys.monitoring
        self._tool: Optional[int] = None
        # id(code) -> line -> offset -> site. Keyed by id: hashing a code object hashes
        # its whole content, too slow for a per-event lookup; _codes keeps them alive.
        self._lines: Dict[int, Dict[int, Dict[int, Site]]] = {}
        self._starts: Dict[int, Site] = {}
        self._codes: Dict[int, CodeType] = {}
        self._listings = Listings(instructions)

    @property
    def tool(self) -> Optional[int]:
        return self._tool

    def instructions(self, code: CodeType) -> Sequence[Ins]:
        return self._listings(code)

    def _claim(self) -> int:
        if self._tool is not None:
            return self._tool
        monitoring = self._monitoring
        for tool in TOOL_PREFERENCE:
            if monitoring.get_tool(tool) is not None:
                continue
            try:
                monitoring.use_tool_id(tool, TOOL_NAME)
            except ValueError:
                continue
            events = monitoring.events
            monitoring.register_callback(tool, events.LINE, self._line_callback())
            monitoring.register_callback(tool, events.PY_START, self._start_callback())
            self._tool = tool
            return tool
        raise Unavailable("every sys.monitoring tool id is taken by other tools")

    def _line_callback(self) -> Callable[[CodeType, int], Any]:
        """The C callback where the speed-ups are built (the same steps, without a Python
        frame of its own), else the pure-Python one."""
        disable = self._monitoring.DISABLE
        if speedups.LineCallback is not None:
            return speedups.LineCallback(self._lines, disable, internal_error)
        return line_callback(self._lines, disable)

    def _start_callback(self) -> Callable[[CodeType, int], Any]:
        starts = self._starts
        getframe = sys._getframe

        def on_start(code: CodeType, offset: int) -> Any:
            try:
                site = starts.get(id(code))
                if site is not None:
                    site.fire(getframe(1))
            except Exception as exc:
                internal_error("the function-start callback", exc)
            return None

        return on_start

    def _needs_start(self, code: CodeType, offset: int) -> bool:
        if not ONE_LINERS_NEED_PY_START:
            return False
        listing = self._listings(code)
        body = [ins for ins in listing if not ins.prologue]
        if not body or body[0].key != offset:
            return False
        prologue_lines = {ins.line for ins in listing if ins.prologue}
        return body[0].line in prologue_lines

    def arm(self, target: CodeLocation, index: CodeIndex, hook: Hook) -> None:
        self._claim()
        code = target.code
        key = id(code)
        for offset in target.keys:
            assert isinstance(offset, int)
            if self._needs_start(code, offset):
                site = self._starts.setdefault(key, Site())
            else:
                line = line_of(code, offset)
                if line is None:
                    continue
                site = (
                    self._lines.setdefault(key, {}).setdefault(line, {}).setdefault(offset, Site())
                )
            site.add(hook)
        self._codes[key] = code
        self._apply(code)

    def disarm(self, target: CodeLocation, hook: Hook) -> None:
        code = target.code
        key = id(code)
        start = self._starts.get(key)
        if start is not None:
            start.discard(hook)
            if not start.hooks:
                del self._starts[key]
        table = self._lines.get(key, {})
        for line in list(table):
            sites = table[line]
            for offset in list(sites):
                sites[offset].discard(hook)
                if not sites[offset].hooks:
                    del sites[offset]
            if not sites:
                del table[line]
        if not table:
            self._lines.pop(key, None)
        self._apply(code)
        if key not in self._lines and key not in self._starts:
            self._codes.pop(key, None)

    def _apply(self, code: CodeType) -> None:
        if self._tool is None:
            return
        events = self._monitoring.events
        wanted = 0
        if id(code) in self._lines:
            wanted |= events.LINE
        if id(code) in self._starts:
            wanted |= events.PY_START
        # Off, then on: re-arms locations an earlier callback returned DISABLE for.
        self._monitoring.set_local_events(self._tool, code, 0)
        if wanted:
            self._monitoring.set_local_events(self._tool, code, wanted)

    def armed_codes(self) -> List[CodeType]:
        return list(self._codes.values())

    def local_events(self, code: CodeType) -> int:
        """Events our tool has enabled on ``code`` (0 when nothing is armed)."""
        if self._tool is None:
            return 0
        return int(self._monitoring.get_local_events(self._tool, code))

    def close(self) -> None:
        tool = self._tool
        if tool is None:
            return
        monitoring = self._monitoring
        for code in list(self._codes.values()):
            try:
                monitoring.set_local_events(tool, code, 0)
            except Exception as exc:
                internal_error("disarming sys.monitoring events", exc)
        self._lines.clear()
        self._starts.clear()
        self._codes.clear()
        self._listings.clear()
        events = monitoring.events
        try:
            monitoring.register_callback(tool, events.LINE, None)
            monitoring.register_callback(tool, events.PY_START, None)
            monitoring.free_tool_id(tool)
        except Exception as exc:
            internal_error("freeing the sys.monitoring tool id", exc)
        self._tool = None
