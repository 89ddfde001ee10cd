"""Python 3.9-3.11: a call to the probe's site injected before the statement's first instruction.

With the ``bytecode`` library, a copy of the code object gets ``site.call()`` inserted at
each armed position; the copy is swapped into every function that shares the original
code. For a nested function the parent's code is rewritten too, with the new child in its
constants, so closures the parent makes later run the probed code. The original objects
are kept and put back when the last probe goes, so ``func.__code__`` is the original again.

Frames that are already running keep the code they started with: a probe placed while a
function runs fires from its next call (a generator or coroutine from its next creation).
"""

from __future__ import annotations

import gc
import sys
import types
import weakref
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

from peephole.agent.placement.instrument import Backend, Hook, Site, Unavailable
from peephole.agent.placement.locate import CodeIndex, Ins, Target

try:
    from bytecode import Bytecode, Instr, Label
except ImportError:  # pragma: no cover - declared as a dependency below 3.12
    Bytecode = None  # type: ignore[assignment,misc]

CodeType = types.CodeType
PROLOGUE = frozenset({"RESUME", "MAKE_CELL", "COPY_FREE_VARS", "RETURN_GENERATOR", "GEN_START"})


def instructions(code: CodeType) -> List[Ins]:
    """The instructions of ``code`` keyed by their position in ``Bytecode.from_code(code)``."""
    return _listing(Bytecode.from_code(code))


def _listing(items: Sequence[object]) -> List[Ins]:
    label_at: Dict[int, int] = {}
    waiting: List[int] = []
    for position, item in enumerate(items):
        if isinstance(item, Label):
            waiting.append(id(item))
        elif isinstance(item, Instr):
            for label in waiting:
                label_at[label] = position
            waiting = []
    result: List[Ins] = []
    in_prologue = True
    previous = ""
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
        arg = item.arg
        targets = (label_at[id(arg)],) if isinstance(arg, Label) and id(arg) in label_at else ()
        result.append(Ins(position, line, not item.is_final(), targets, in_prologue))
    return result


def _call(site: Site, before: Instr) -> List[Instr]:
    """``site.call()`` with its result discarded, on the line of ``before``."""
    line = before.lineno if isinstance(before.lineno, int) else None
    names: List[Tuple[str, Any]]
    if sys.version_info >= (3, 11):
        names = [("PUSH_NULL", None), ("LOAD_CONST", site.call), ("PRECALL", 0), ("CALL", 0)]
    else:
        names = [("LOAD_CONST", site.call), ("CALL_FUNCTION", 0)]
    names.append(("POP_TOP", None))
    return [
        Instr(name, lineno=line) if arg is None else Instr(name, arg, lineno=line)
        for name, arg in names
    ]


class _Node:
    """One original code object and what is armed in it and in the code nested in it."""

    __slots__ = ("children", "current", "functions", "original", "parent", "sites")

    def __init__(self, original: CodeType, parent: Optional[_Node]) -> None:
        self.original = original
        self.current = original
        self.parent = parent
        self.children: Dict[int, _Node] = {}
        self.sites: Dict[Hashable, Site] = {}
        self.functions: weakref.WeakSet[types.FunctionType] = weakref.WeakSet()

    def idle(self) -> bool:
        return not self.sites and not self.children and self.current is self.original


class InjectBackend(Backend):
    name = "bytecode injection"

    def __init__(self) -> None:
        if Bytecode is None:
            raise Unavailable("the 'bytecode' package is needed on Python 3.9-3.11")
        self._nodes: Dict[int, _Node] = {}
        self._originals: Dict[int, CodeType] = {}  # id(instrumented copy) -> original

    def instructions(self, code: CodeType) -> Sequence[Ins]:
        return instructions(code)

    def unwrap(self, code: CodeType) -> CodeType:
        return self._originals.get(id(code), code)

    def arm(self, target: Target, index: CodeIndex, hook: Hook) -> None:
        node = self._node_for(target.code, index)
        added = False
        for key in target.keys:
            site = node.sites.get(key)
            if site is None:
                site = node.sites[key] = Site()
                added = True
            site.add(hook)
        if added:  # the index just listed every function, closures included: no scan
            self._rebuild(node, scan=False)

    def disarm(self, target: Target, hook: Hook) -> None:
        node = self._nodes.get(id(target.code))
        if node is None:
            return
        removed = False
        for key in target.keys:
            site = node.sites.get(key)
            if site is None:
                continue
            site.discard(hook)
            if not site.hooks:
                del node.sites[key]
                removed = True
        if removed:
            self._rebuild(node, scan=True)
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
            for function in index.functions.get(id(original), ()):
                node.functions.add(function)
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
        items: List[object] = []
        for position, item in enumerate(code):
            site = node.sites.get(position)
            if site is not None and isinstance(item, Instr):
                items.extend(_call(site, item))
            if (
                isinstance(item, Instr)
                and isinstance(item.arg, CodeType)
                and id(item.arg) in replaced
            ):
                item.arg = replaced[id(item.arg)]
            items.append(item)
        code[:] = items
        return code.to_code()

    def _rebuild(self, node: Optional[_Node], scan: bool) -> None:
        while node is not None:
            new = self._build(node)
            if new is node.current:
                return
            self._swap(node, new, scan)
            node = node.parent

    def _swap(self, node: _Node, new: CodeType, scan: bool = True) -> None:
        old = node.current
        known = {id(old), id(node.original)}
        functions = set(node.functions)
        if scan and node.parent is not None:  # closures made since: only gc knows them
            functions.update(
                obj
                for obj in gc.get_referrers(old, node.original)
                if type(obj) is types.FunctionType
            )
        for function in functions:
            if id(function.__code__) in known:
                function.__code__ = new
                node.functions.add(function)
        self._originals.pop(id(old), None)
        node.current = new
        if new is not node.original:
            self._originals[id(new)] = node.original

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
            self._swap(node, node.original)
