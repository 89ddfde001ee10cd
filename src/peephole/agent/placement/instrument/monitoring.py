"""Python 3.12+: ``sys.monitoring`` (PEP 669) INSTRUCTION events on probed code objects only.

Events are enabled per code object (``set_local_events``), never globally, so code without
probes runs at full speed. The event at an instruction where no probed statement starts
returns ``DISABLE``, which switches that one instruction off for good, so after one run of
each path only the probed instructions still call out. ``INSTRUCTION`` rather than ``LINE``
because CPython cannot switch a line event off where it never calls the callback: a line
reached again from the same line (the loop of a comprehension) stays instrumented and costs
every iteration, about 300 ns per call of a function with a 50-item comprehension
(docs/benchmarks.md). ``restart_events()`` is never called because it would re-enable every
tool's disabled locations in the whole process. Arming a new statement in a code object
switches its events off and on again, which re-arms its disabled instructions.

Frames that are already running see a newly armed statement (checked on 3.12 and 3.13,
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


def instruction_callback(sites: Dict[int, Dict[int, Site]], disable: Any) -> Callable[..., Any]:
    """The INSTRUCTION callback over ``sites`` (id(code) -> offset -> site): ``disable`` where
    no probed statement starts, else the hooks of the statement that starts there.
    ``_speedups.InstructionCallback`` is this, in C."""
    getframe = sys._getframe

    def on_instruction(code: CodeType, offset: int) -> Any:
        try:
            table = sites.get(id(code))
            if table is None:
                return disable
            site = table.get(offset)
            if site is None:
                return disable
            frame = getframe(1)
            for hook in site.hooks:  # Site.fire, inlined: one call less per hit
                hook(frame)
        except Exception as exc:  # free when nothing fails: a handler costs nothing
            internal_error("the instruction callback", exc)
        return None

    return on_instruction


class MonitoringBackend(Backend):
    name = "sys.monitoring"

    def __init__(self) -> None:
        self._monitoring: Any = sys.monitoring
        self._tool: Optional[int] = None
        # id(code) -> offset -> site. Keyed by id: hashing a code object hashes its whole
        # content, too slow for a per-event lookup; _codes keeps them alive.
        self._sites: Dict[int, Dict[int, Site]] = {}
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
            monitoring.register_callback(
                tool, monitoring.events.INSTRUCTION, self._instruction_callback()
            )
            self._tool = tool
            return tool
        raise Unavailable("every sys.monitoring tool id is taken by other tools")

    def _instruction_callback(self) -> Callable[[CodeType, int], Any]:
        """The C callback where the speed-ups are built (the same steps, without a Python
        frame of its own), else the pure-Python one."""
        disable = self._monitoring.DISABLE
        if speedups.InstructionCallback is not None:
            return speedups.InstructionCallback(self._sites, disable, internal_error)
        return instruction_callback(self._sites, disable)

    def arm(self, target: CodeLocation, index: CodeIndex, hook: Hook) -> None:
        self._claim()
        code = target.code
        key = id(code)
        for offset in target.keys:
            assert isinstance(offset, int)
            self._sites.setdefault(key, {}).setdefault(offset, Site()).add(hook)
        self._codes[key] = code
        self._apply(code)

    def disarm(self, target: CodeLocation, hook: Hook) -> None:
        code = target.code
        key = id(code)
        table = self._sites.get(key, {})
        for offset in list(table):
            table[offset].discard(hook)
            if not table[offset].hooks:
                del table[offset]
        if not table:
            self._sites.pop(key, None)
        self._apply(code)
        if key not in self._sites:
            self._codes.pop(key, None)

    def _apply(self, code: CodeType) -> None:
        if self._tool is None:
            return
        # Off, then on: re-arms instructions an earlier callback returned DISABLE for.
        self._monitoring.set_local_events(self._tool, code, 0)
        if id(code) in self._sites:
            self._monitoring.set_local_events(self._tool, code, self._monitoring.events.INSTRUCTION)

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
        self._sites.clear()
        self._codes.clear()
        self._listings.clear()
        try:
            monitoring.register_callback(tool, monitoring.events.INSTRUCTION, None)
            monitoring.free_tool_id(tool)
        except Exception as exc:
            internal_error("freeing the sys.monitoring tool id", exc)
        self._tool = None
