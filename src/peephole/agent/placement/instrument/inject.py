"""Python 3.9-3.11: a call to the probe's site injected before the statement's first instruction.

With the ``bytecode`` library, a copy of the code object gets ``site.call()`` inserted at
each armed position; the copy is swapped into every function that shares the original
code. For a nested function the parent's code is rewritten too, with the new child in its
constants, so closures the parent makes later run the probed code. The original objects
are kept and put back when the last probe goes, so ``func.__code__`` is the original again.

Frames that are already running keep the code they started with: a probe placed while a
function runs fires from its next call (a generator or coroutine from its next creation).
The functions to swap come from the placement registry (never a heap scan), so a closure
made before the probe and kept outside its module is not reached.

Every table is keyed by ``id`` *and* holds the object it names, so an id reused by a new
object after the old one was freed can never be mistaken for it.
"""

from __future__ import annotations

import sys
import types
import weakref
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

from peephole.agent import speedups
from peephole.agent.health import internal_error
from peephole.agent.placement.instrument import Backend, Hook, Listings, Site, Unavailable
from peephole.agent.placement.locate import CodeLocation
from peephole.agent.placement.paths import spellings
from peephole.agent.placement.registry import REGISTRY, CodeIndex
from peephole.agent.placement.statements import Entry, Ins

try:
    from bytecode import Bytecode, Instr, Label
    from bytecode.instr import TryBegin, TryEnd  # bytecode does not re-export them
except ImportError:  # pragma: no cover - declared as a dependency below 3.12
    Bytecode = None  # type: ignore[assignment,misc]

__all__ = ["InjectBackend"]

CodeType = types.CodeType
CALL_STACK = 2  # stack items the injected call needs
MID_LINE_TARGETS_ARE_SYNTHETIC = sys.version_info < (3, 10)
PROLOGUE = frozenset({"RESUME", "MAKE_CELL", "COPY_FREE_VARS", "RETURN_GENERATOR", "GEN_START"})


def instructions(code: CodeType) -> List[Ins]:
    """The instructions of ``code`` keyed by their position in ``Bytecode.from_code(code)``."""
    return _listing(Bytecode.from_code(code))


def _listing(items: Sequence[object]) -> List[Ins]:
    label_at: Dict[int, int] = {}
    waiting: List[int] = []
    handler: Dict[int, Label] = {}  # position -> its exception handler (3.11's table)
    covering: Optional[Label] = None
    for position, item in enumerate(items):
        if isinstance(item, TryBegin) and isinstance(item.target, Label):
            covering = item.target
        elif isinstance(item, TryEnd):
            covering = None
        elif isinstance(item, Instr) and covering is not None:
            handler[position] = covering
        if isinstance(item, Label):
            waiting.append(id(item))
        elif isinstance(item, Instr):
            for label in waiting:
                label_at[label] = position
            waiting = []
    result: List[Ins] = []
    in_prologue = True
    previous = ""
    previous_line: Optional[int] = None
    synthetic = False
    jumped_to = set(label_at.values())
    for position, item in enumerate(items):
        if not isinstance(item, Instr):
            continue
        name = item.name
        if in_prologue and not (
            (name in PROLOGUE and (name != "RESUME" or item.arg == 0))
            or (name == "POP_TOP" and previous == "RETURN_GENERATOR")
        ):
            in_prologue = False
        previous = name
        line = item.lineno if isinstance(item.lineno, int) else None
        # 3.9 gives code it adds (the implicit ``return None``) the last line seen: a jump
        # into the middle of a line is never how a statement starts, so from there to the
        # next line the instructions belong to whatever reaches them.
        mid_line = line == previous_line
        synthetic = mid_line and (synthetic or position in jumped_to)
        previous_line = line
        if synthetic and MID_LINE_TARGETS_ARE_SYNTHETIC:
            line = None
        arg = item.arg
        targets = (label_at[id(arg)],) if isinstance(arg, Label) and id(arg) in label_at else ()
        caught = handler.get(position)
        raises_to = (label_at[id(caught)],) if caught is not None and id(caught) in label_at else ()
        result.append(Ins(position, line, not item.is_final(), targets, in_prologue, raises_to))
    return result


def _call(site: Site, before: Instr) -> List[Instr]:
    """``site.call()`` (``_speedups.InjectedCall``, its C twin, where built) with its result
    discarded, on the line of ``before``."""
    line = before.lineno if isinstance(before.lineno, int) else None
    call = (
        site.call if speedups.InjectedCall is None else speedups.InjectedCall(site, internal_error)
    )
    names: List[Tuple[str, Any]]
    if sys.version_info >= (3, 11):
        names = [("PUSH_NULL", None), ("LOAD_CONST", call), ("PRECALL", 0), ("CALL", 0)]
    else:
        names = [("LOAD_CONST", call), ("CALL_FUNCTION", 0)]
    names.append(("POP_TOP", None))
    return [
        Instr(name, lineno=line) if arg is None else Instr(name, arg, lineno=line)
        for name, arg in names
    ]


def _placements(
    listing: Sequence[object], sites: Dict[Hashable, Site], entries: Dict[Hashable, Entry]
) -> Tuple[Dict[int, List[object]], Dict[int, Label]]:
    """Where each site's call goes, and the jumps to point at it.

    Usually right before the statement's first instruction. When jumps from inside the
    statement land on that instruction too (3.9 jumps back to a ``while`` condition), the
    call goes before the instruction's labels, behind a label of its own that only the
    entries from outside jump to; a fall-through that is no entry jumps over it.
    """
    calls: Dict[int, List[object]] = {}
    redirects: Dict[int, Label] = {}
    for key, site in sites.items():
        assert isinstance(key, int)
        item = listing[key]
        if not isinstance(item, Instr):
            continue
        entry = entries.get(key)
        start = key
        while start > 0 and isinstance(listing[start - 1], Label):
            start -= 1
        plain = entry is None or entry.caught_in or (entry.falls_in and not entry.jumps_within)
        if entry is None or plain or start == key:  # an exception's way in cannot move
            calls.setdefault(key, []).extend(_call(site, item))
            continue
        inner = listing[start]
        assert isinstance(inner, Label)
        detour: List[object] = []
        if not entry.falls_in and _falls_into(listing, start):
            detour.append(Instr("JUMP_FORWARD", inner, lineno=item.lineno))
        outer = Label()
        detour.append(outer)
        detour.extend(_call(site, item))
        calls.setdefault(start, []).extend(detour)
        for jump in entry.jumps_in:
            assert isinstance(jump, int)
            jumping = listing[jump]
            if isinstance(jumping, Instr) and isinstance(jumping.arg, Label):
                redirects[jump] = outer
    return calls, redirects


def _falls_into(listing: Sequence[object], position: int) -> bool:
    """Whether the instruction before ``position`` can continue into it."""
    for item in reversed(listing[:position]):
        if isinstance(item, Instr):
            return not item.is_final()
    return False


class _Node:
    """One original code object and what is armed in it and in the code nested in it."""

    __slots__ = ("children", "current", "entries", "functions", "original", "parent", "sites")

    def __init__(self, original: CodeType, parent: Optional[_Node]) -> None:
        self.original = original
        self.current = original
        self.parent = parent
        self.children: Dict[int, _Node] = {}
        self.sites: Dict[Hashable, Site] = {}
        self.entries: Dict[Hashable, Entry] = {}  # how control reaches each site
        self.functions: weakref.WeakSet[types.FunctionType] = weakref.WeakSet()

    def idle(self) -> bool:
        return not self.sites and not self.children and self.current is self.original


class InjectBackend(Backend):
    name = "bytecode injection"

    def __init__(self) -> None:
        if Bytecode is None:
            raise Unavailable("the 'bytecode' package is needed on Python 3.9-3.11")
        self._nodes: Dict[int, _Node] = {}
        # id(instrumented copy) -> (that copy, its original)
        self._originals: Dict[int, Tuple[CodeType, CodeType]] = {}
        self._listings = Listings(instructions)

    def instructions(self, code: CodeType) -> Sequence[Ins]:
        return self._listings(code)

    def unwrap(self, code: CodeType) -> CodeType:
        entry = self._originals.get(id(code))
        return entry[1] if entry is not None and entry[0] is code else code

    def current(self, code: CodeType) -> CodeType:
        node = self._nodes.get(id(code))
        return node.current if node is not None and node.original is code else code

    def arm(self, target: CodeLocation, index: CodeIndex, hook: Hook) -> None:
        node = self._node_for(target.code, index)
        added = False
        for key in target.keys:
            site = node.sites.get(key)
            if site is None:
                site = node.sites[key] = Site()
                added = True
                if key in target.entries:
                    node.entries[key] = target.entries[key]
            site.add(hook)
        if added:
            self._rebuild(node, index.functions)

    def disarm(self, target: CodeLocation, hook: Hook) -> None:
        node = self._nodes.get(id(target.code))
        if node is None or node.original is not target.code:
            return
        removed = False
        for key in target.keys:
            site = node.sites.get(key)
            if site is None:
                continue
            site.discard(hook)
            if not site.hooks:
                del node.sites[key]
                node.entries.pop(key, None)
                removed = True
        if removed:
            self._rebuild(node, REGISTRY.functions(spellings(target.code.co_filename)))
        self._prune(node)

    def armed_codes(self) -> List[CodeType]:
        return [node.original for node in self._nodes.values() if node.sites]

    def close(self) -> None:
        for node in list(self._nodes.values()):
            node.sites.clear()
        for node in list(self._nodes.values()):
            if node.parent is None:
                self._restore_tree(node)
        self._nodes.clear()
        self._originals.clear()
        self._listings.clear()

    # --- internals --------------------------------------------------------------------

    def _node_for(self, code: CodeType, index: CodeIndex) -> _Node:
        chain = [code, *index.ancestors(code)]
        parent: Optional[_Node] = None
        nodes: List[_Node] = []
        for original in reversed(chain):
            node = self._nodes.get(id(original))
            if node is None:
                node = self._nodes[id(original)] = _Node(original, parent)
                if parent is not None:
                    parent.children[id(original)] = node
            nodes.append(node)
            parent = node
        return nodes[-1]

    def _build(self, node: _Node) -> CodeType:
        replaced = {
            id(child.original): child.current
            for child in node.children.values()
            if child.current is not child.original
        }
        if not node.sites:
            if not replaced:
                return node.original
            consts = tuple(
                replaced.get(id(const), const) if isinstance(const, CodeType) else const
                for const in node.original.co_consts
            )
            return node.original.replace(co_consts=consts)
        code = Bytecode.from_code(node.original)
        listing = list(code)
        calls, redirects = _placements(listing, node.sites, node.entries)
        items: List[Any] = []  # its item types differ between bytecode versions
        for position, item in enumerate(listing):
            items.extend(calls.get(position, ()))
            if isinstance(item, Instr) and position in redirects:
                item.arg = redirects[position]
            if (
                isinstance(item, Instr)
                and isinstance(item.arg, CodeType)
                and id(item.arg) in replaced
            ):
                item.arg = replaced[id(item.arg)]
            items.append(item)
        code[:] = items
        # What the injected call pushes (at most two items, gone before the statement runs)
        # on top of the deepest stack of the original: no stack analysis needed.
        return code.to_code(stacksize=node.original.co_stacksize + CALL_STACK)

    def _rebuild(self, node: Optional[_Node], functions: Sequence[types.FunctionType]) -> None:
        while node is not None:
            new = self._build(node)
            if new is node.current:
                return
            self._swap(node, new, functions)
            node = node.parent

    def _swap(self, node: _Node, new: CodeType, functions: Iterable[types.FunctionType]) -> None:
        """Point every function that runs this node's code (current or original) at ``new``."""
        old = node.current
        for function in [*functions, *node.functions]:
            code = function.__code__
            if code is old or code is node.original:
                function.__code__ = new
                node.functions.add(function)
        self._originals.pop(id(old), None)
        node.current = new
        if new is not node.original:
            self._originals[id(new)] = (new, node.original)

    def _prune(self, node: Optional[_Node]) -> None:
        while node is not None and node.idle():
            self._nodes.pop(id(node.original), None)
            parent = node.parent
            if parent is not None:
                parent.children.pop(id(node.original), None)
            node.functions = weakref.WeakSet()
            node = parent

    def _restore_tree(self, node: _Node) -> None:
        for child in list(node.children.values()):
            self._restore_tree(child)
        node.children.clear()
        if node.current is not node.original:
            functions = REGISTRY.functions(spellings(node.original.co_filename))
            self._swap(node, node.original, functions)
