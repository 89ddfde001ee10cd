"""Arming lines of running code: the technique depends on the interpreter.

3.12+ uses ``sys.monitoring`` (:mod:`.monitoring`), 3.9-3.11 rewrites code objects with the
``bytecode`` library (:mod:`.inject`). Both call a :class:`Site` when an armed statement
starts; the site calls the probes armed there.
"""

from __future__ import annotations

import sys
import types
from typing import Callable, Dict, List, Sequence, Tuple

from peephole.agent.health import internal_error
from peephole.agent.placement.locate import CodeLocation
from peephole.agent.placement.registry import CodeIndex
from peephole.agent.placement.statements import Ins

__all__ = ["Backend", "Hook", "Listings", "Site", "Unavailable", "new_backend"]

Hook = Callable[[types.FrameType], None]


class Site:
    """The probes armed on one statement start in one code object."""

    __slots__ = ("hooks",)

    def __init__(self) -> None:
        self.hooks: Tuple[Hook, ...] = ()

    def fire(self, frame: types.FrameType) -> None:
        for hook in self.hooks:
            try:
                hook(frame)
            except Exception as exc:
                internal_error("a probe hook", exc)

    def call(self) -> None:
        """What injected code calls: no arguments, the caller's frame is the one hit
        (``_speedups.InjectedCall`` is this, in C)."""
        hooks = self.hooks
        if hooks:
            try:
                frame = sys._getframe(1)
            except Exception as exc:
                internal_error("the injected call", exc)
                return
            for hook in hooks:
                try:
                    hook(frame)
                except Exception as exc:
                    internal_error("a probe hook", exc)

    def add(self, hook: Hook) -> None:
        self.hooks = (*self.hooks, hook)

    def discard(self, hook: Hook) -> None:
        self.hooks = tuple(h for h in self.hooks if h != hook)


class Listings:
    """Instruction listings of the code objects analysed last: every probe placed in a file
    looks at the same few code objects again. Keyed by id, holding the code object."""

    KEPT = 64

    def __init__(self, make: Callable[[types.CodeType], Sequence[Ins]]) -> None:
        self._make = make
        self._kept: Dict[int, Tuple[types.CodeType, Sequence[Ins]]] = {}

    def __call__(self, code: types.CodeType) -> Sequence[Ins]:
        kept = self._kept.get(id(code))
        if kept is not None and kept[0] is code:
            return kept[1]
        listing = self._make(code)
        if len(self._kept) >= self.KEPT:
            self._kept.clear()
        self._kept[id(code)] = (code, listing)
        return listing

    def clear(self) -> None:
        self._kept.clear()


class Backend:
    """What the agent needs from an instrumentation technique."""

    name = "none"

    def instructions(self, code: types.CodeType) -> Sequence[Ins]:
        raise NotImplementedError

    def unwrap(self, code: types.CodeType) -> types.CodeType:
        """The original of a code object this backend may have replaced."""
        return code

    def current(self, code: types.CodeType) -> types.CodeType:
        """What runs in place of ``code`` now (the module body armed before an import)."""
        return code

    def arm(self, target: CodeLocation, index: CodeIndex, hook: Hook) -> None:
        raise NotImplementedError

    def disarm(self, target: CodeLocation, hook: Hook) -> None:
        raise NotImplementedError

    def armed_codes(self) -> List[types.CodeType]:
        """Code objects that currently carry at least one armed site."""
        raise NotImplementedError

    def close(self) -> None:
        """Disarm everything and release what the technique holds."""
        raise NotImplementedError


class Unavailable(RuntimeError):
    """This interpreter cannot be instrumented (reason in ``str()``)."""


def new_backend() -> Backend:
    """The technique for this interpreter."""
    if sys.version_info >= (3, 12):
        from peephole.agent.placement.instrument.monitoring import MonitoringBackend

        return MonitoringBackend()
    from peephole.agent.placement.instrument.inject import InjectBackend

    return InjectBackend()
