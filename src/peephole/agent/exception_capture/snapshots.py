"""Exception snapshots: the frames and locals of a failure, grouped by fingerprint.

:class:`ExceptionCapture` hooks the places where an exception ends up unhandled or reported
(``sys.excepthook``, ``threading.excepthook``, the asyncio loops' exception handler, ``logging``
records with exception info, and the web frameworks through
:mod:`peephole.agent.integrations`) and turns each exception into an ``exception`` event.

Everything runs on the thread that failed, so it stays cheap and safe: the traceback is
walked once to find its fingerprint (cached by the code locations it passes through);
locals are captured (by the agent's Capturer, so limits and redaction apply) only for the
first exception of a fingerprint in each ``exception_interval`` and within
``exception_rate``; the others are counted and their counts sent by a background thread,
except the first occurrence of a fingerprint, which is sent at once (without locals when
over the rate) so a new failure shows up within seconds, not at the next count.
No application code runs (the message is built from ``exc.args`` of builtin scalar types
only), and no frame, traceback or value is kept.
docs/exceptions.md explains the choices.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from peephole import protocol
from peephole.agent import event_ids, integrations, otel
from peephole.agent.clock import NS
from peephole.agent.code_kind import AGENT, APP, LIBRARY, STDLIB
from peephole.agent.code_kind import code_kind as frame_kind
from peephole.agent.code_kind import code_kinds as frame_kinds
from peephole.agent.exception_capture import fingerprints
from peephole.agent.exception_capture.fingerprints import (
    Stack,
    fingerprint_of,
    known_fingerprints,
    module_name,
    remember_fingerprint,
    remember_shape,
    repeated_fingerprint,
    shape_of,
    type_name,
)
from peephole.agent.health import internal_error
from peephole.agent.ratelimit import TokenBucket
from peephole.agent.safe.access import CO_OPTIMIZED

if TYPE_CHECKING:
    from peephole.agent.core import Agent

__all__ = ["FIRST_SEEN_RATE", "ExceptionCapture", "active", "capture_active"]

MAX_CHAIN = 5  # exceptions followed through __cause__ / __context__
MAX_MESSAGE = 1024  # characters of a rendered message
MAX_GROUPS = 2000  # fingerprints remembered; the least recently seen are forgotten first
COUNT_FLUSH_SECONDS = 60.0  # how often counts of exceptions without a snapshot are sent
FIRST_SEEN_RATE = 20.0  # new fingerprints per second sent at once; more wait for the count

# Read through the descriptors of BaseException so an application class cannot run code
# from a property of the same name (their bound __get__: one lookup less per read).
_ARGS = BaseException.__dict__["args"].__get__
_CAUSE = BaseException.__dict__["__cause__"].__get__
_CONTEXT = BaseException.__dict__["__context__"].__get__
_SUPPRESS_CONTEXT = BaseException.__dict__["__suppress_context__"].__get__
_TRACEBACK = BaseException.__dict__["__traceback__"].__get__
_EXC_DICT = BaseException.__dict__["__dict__"].__get__

_MARK = "__peephole_captured__"  # set in an exception's __dict__ once captured
_SCALARS = (str, int, float, bool, type(None))
_NOT_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)
_LOCALS_ARE_PROXIES = sys.version_info >= (3, 13)  # frame.f_locals: PEP 667, no dict to drop
_getrefcount = sys.getrefcount
# What each kind of frame adds to its record in an event, in this order (an update per frame)
_FRAME_FLAGS: Dict[str, Dict[str, Any]] = {
    APP: {"app": True},
    LIBRARY: {"app": False, "library": LIBRARY},
    STDLIB: {"app": False, "library": STDLIB},
}


_active: Optional[ExceptionCapture] = None
# Re-entry guard: capturing an exception can log or raise. The threads inside a capture, by
# ident (a set is cheaper to test and change than a threading.local).
_capturing: Set[int] = set()
_get_ident = threading.get_ident


def active() -> Optional[ExceptionCapture]:
    """The installed capture of this process, or None."""
    return _active


def capture_active(
    exc: Optional[BaseException], origin: str, tb: Optional[TracebackType] = None
) -> None:
    """Capture ``exc`` with the installed capture, if any. Used by every hook; never raises."""
    capture = _active
    if capture is not None and exc is not None:
        capture.capture(exc, origin, tb)


class ExceptionCapture:
    """Turns exceptions into grouped ``exception`` events for one agent.

    ``install()`` puts the hooks in place (once per process) and makes this instance the one
    they report to; ``uninstall()`` removes them and sends the counts still pending.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._groups: Dict[str, _Group] = {}
        self.clock = agent.clock  # the agent's, never the application's patchable `time`
        self._bucket = TokenBucket(agent.config.exception_rate, clock=self.clock)
        self._first_seen = TokenBucket(FIRST_SEEN_RATE, clock=self.clock)
        self._flusher: Optional[threading.Thread] = None
        self._stop = threading.Event()

    # --- lifecycle ---------------------------------------------------------------------

    def install(self) -> None:
        """Hook the process (unless ``capture_exceptions`` is off in the agent's settings)."""
        global _active
        if not self.agent.config.capture_exceptions:
            return
        _active = self
        self._stop.clear()
        if self._flusher is not None and not self._flusher.is_alive():
            self._flusher = None
        _install_hooks()

    def uninstall(self) -> None:
        """Unhook the process, stop the count thread and send the counts still pending."""
        global _active
        if _active is self:
            _active = None
            _uninstall_hooks()
        self._stop.set()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join(timeout=1.0)
        self._flusher = None
        self.flush()

    # --- capture -----------------------------------------------------------------------

    def capture(
        self, exc: BaseException, origin: str, tb: Optional[TracebackType] = None
    ) -> Optional[str]:
        """Record ``exc`` (seen at ``origin``); return the event id if a snapshot was sent.

        Never raises. The same exception object is recorded once, whichever hooks see it.
        """
        thread = _get_ident()
        if thread in _capturing:
            return None
        _capturing.add(thread)
        try:
            if not self._switched_on():
                return None
            return self._capture(exc, origin, tb)
        except Exception as exc_of_agent:
            internal_error("capturing an exception", exc_of_agent)
            return None
        finally:
            _capturing.discard(thread)

    def _switched_on(self) -> bool:
        """The agent's setting and the server's current policy (read live, on every call)."""
        agent = self.agent
        policy = agent.policy
        return bool(agent.config.capture_exceptions) and (
            policy is None or bool(getattr(policy, "capture_exceptions", True))
        )

    def _capture(
        self, exc: BaseException, origin: str, tb: Optional[TracebackType]
    ) -> Optional[str]:
        cls = type(exc)
        known = _FAILURE_CLASSES.get(id(cls))  # _is_failure_class, without its call when known
        if known is None or known[0] is not cls:
            known = _is_failure_class(cls, exc)
        if not known[1]:
            return None
        if not _mark_captured(exc):
            return None
        chain = _chain(exc, tb)
        stacks: Optional[List[Stack]] = None
        fingerprint = repeated_fingerprint(chain)
        if fingerprint is None:
            shape, owners, lastis = shape_of(chain)
            fingerprint = known_fingerprints.get(shape)
            if fingerprint is None:
                stacks = [_stack(traceback) for _, traceback in chain]
                fingerprint = fingerprint_of(chain, stacks)
                remember_fingerprint(shape, fingerprint, owners)
            remember_shape(chain, owners, lastis, fingerprint)
        config = self.agent.config
        clock = self.clock
        now = clock.wall()
        mono = clock.monotonic_ns() / NS  # clock.monotonic(), without a call of its own
        evicted: Sequence[Tuple[str, _Group]] = ()  # a list only when groups are forgotten
        with self._lock:
            group = self._groups.pop(fingerprint, None)
            first_seen = group is None
            if group is None:
                group = _Group()
                if len(self._groups) >= MAX_GROUPS:
                    evicted = self._forget_oldest()
            self._groups[fingerprint] = group  # most recently seen last
            snapshot = (
                group.snapshot_at is None or mono - group.snapshot_at >= config.exception_interval
            ) and self._bucket.take()
            if snapshot:
                group.snapshot_at = mono
                count, first = group.pending + 1, group.first_pending or now
                group.pending, group.first_pending = 0, None
            else:
                group.pending += 1
                group.first_pending = group.first_pending or now
                group.last_pending = now
        for forgotten_fingerprint, forgotten in evicted:
            self._send_count(
                forgotten_fingerprint,
                forgotten.summary,
                forgotten.pending,
                forgotten.first_pending,
                forgotten.last_pending,
            )
        if not snapshot and group.summary is not None:
            if self._flusher is None:
                self._ensure_flusher()
            return None
        full = stacks if stacks is not None else [_stack(t) for _, t in chain]
        exc_type = type_name(type(exc))
        message = self._message(exc)
        if group.summary is None:
            max_frames = max(int(config.limits.max_frames), 1)
            group.summary = {
                "exc_type": exc_type,
                "message": message,
                "origin": origin,
                "frames": [_plain_frame(*entry) for entry in full[0][:max_frames]],
            }
        if not snapshot:
            if first_seen and self._first_seen.take():
                self._send_pending(fingerprint, group)
            self._ensure_flusher()
            return None
        event: Dict[str, Any] = {
            "id": event_ids.new_id(),
            "type": protocol.EXCEPTION,
            "time": now,
            "fingerprint": fingerprint,
            "exc_type": exc_type,
            "message": message,
            "origin": origin,
            "thread": threading.current_thread()._name,  # type: ignore[attr-defined] # .name, no property call
            "snapshot": True,
            "count": count,
            "first_time": first,
            "last_time": now,
        }
        event.update(self._snapshot(chain, full, exc_type, message))
        event_id: str = event["id"]
        self.agent.emit(event)
        if config.otel_span_events:
            otel.add_snapshot_event(event)
        return event_id

    def _forget_oldest(self) -> List[Tuple[str, _Group]]:
        """Forget the least recently seen groups until there is room for one (under the lock);
        return those with counts not sent yet."""
        evicted = []
        while len(self._groups) >= MAX_GROUPS:
            oldest = next(iter(self._groups))
            forgotten = self._groups.pop(oldest)
            if forgotten.pending:
                evicted.append((oldest, forgotten))
        return evicted

    def _snapshot(
        self,
        chain: List[Tuple[BaseException, Optional[TracebackType]]],
        stacks: List[Stack],
        exc_type: str,
        message: str,
    ) -> Dict[str, Any]:
        """Frames (with locals for the app frames nearest each raise) of every exception of
        the chain; the budget of frames with locals is shared, the raised exception (whose
        ``exc_type`` and ``message`` are already rendered) first."""
        budget = max(int(self.agent.config.exception_frames), 0)
        max_frames = max(int(self.agent.config.limits.max_frames), 1)
        captured: List[FrameType] = []  # frames whose locals are already in the event (few)
        parts: List[Dict[str, Any]] = []
        size = 0
        cut = False
        for (exc, _), stack in zip(chain, stacks):
            stack = stack[:max_frames]
            frames_and_lines: List[Tuple[FrameType, int]] = []
            add_frame = frames_and_lines.append
            locals_at: List[int] = []
            first_captured = len(captured)
            for frame, line, kind in stack:
                # Functions only (and the frame that raised): the locals of a module's
                # top-level code are its globals, everything it imported and defined.
                if (
                    budget > 0
                    and kind == APP
                    and (not frames_and_lines or frame.f_code.co_flags & CO_OPTIMIZED)
                    and frame not in captured  # frames compare by identity
                ):
                    captured.append(frame)
                    locals_at.append(len(frames_and_lines))
                    budget -= 1
                add_frame((frame, line))
            try:
                result = self.agent.capturer.frames(frames_and_lines, locals_at)
            finally:
                _drop_locals_snapshots(captured[first_captured:])
            frames = result.get("frames", [])
            for frame_dict, entry in zip(frames, stack):
                frame_dict.update(_FRAME_FLAGS[entry[2]])
            size += int(result.get("size", 0))
            cut = cut or bool(result.get("cut"))
            parts.append(
                {
                    "exc_type": exc_type if not parts else type_name(type(exc)),
                    "message": message if not parts else self._message(exc),
                    "frames": frames,
                }
            )
        snapshot: Dict[str, Any] = {"frames": parts[0]["frames"], "chain": parts[1:], "size": size}
        if cut:
            snapshot["cut"] = "budget"
        return snapshot

    def _message(self, exc: BaseException) -> str:
        """The message, with secrets masked by the agent's value patterns."""
        message = _message(exc)
        redactor = getattr(self.agent, "redactor", None)
        masked = redactor.redact_text(message) if redactor is not None else None
        return message if masked is None else masked

    # --- counts ------------------------------------------------------------------------

    def flush(self) -> int:
        """Send one count event per fingerprint with exceptions not sent yet; return how many.

        Returns once they are emitted, also those a concurrent flush had taken."""
        with self._flushing:
            with self._lock:
                due = [(fp, g) for fp, g in self._groups.items() if g.pending]
                batches = []
                for fingerprint, group in due:
                    batches.append(
                        (
                            fingerprint,
                            group.summary,
                            group.pending,
                            group.first_pending,
                            group.last_pending,
                        )
                    )
                    group.pending, group.first_pending = 0, None
            for fingerprint, summary, count, first, last in batches:
                self._send_count(fingerprint, summary, count, first, last)
        return len(batches)

    def _send_pending(self, fingerprint: str, group: _Group) -> None:
        """Send one group's count now (the first occurrence of a fingerprint)."""
        with self._lock:
            count, first, last = group.pending, group.first_pending, group.last_pending
            group.pending, group.first_pending = 0, None
        if count:
            self._send_count(fingerprint, group.summary, count, first, last)

    def _send_count(
        self,
        fingerprint: str,
        summary: Optional[Dict[str, Any]],
        count: int,
        first: Optional[float],
        last: Optional[float],
    ) -> None:
        """An event that only counts: type, message and frames, without locals."""
        event: Dict[str, Any] = {
            "id": event_ids.new_id(),
            "type": protocol.EXCEPTION,
            "time": self.clock.wall(),
            "fingerprint": fingerprint,
            "snapshot": False,
            "count": count,
            "first_time": first,
            "last_time": last,
            "chain": [],
            **(summary or {}),
        }
        try:
            self.agent.emit(event)
        except Exception as exc:
            internal_error("sending exception counts", exc)

    def _ensure_flusher(self) -> None:
        """Start the count thread if it is not running (it runs until ``uninstall()``; a
        forked child forgets the parent's in ``_after_fork``)."""
        if self._flusher is not None:
            return
        with self._lock:
            if self._flusher is not None:
                return
            thread = threading.Thread(
                target=self._flush_loop, name="peephole-exception-counts", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: counts go out with uninstall()
                return
            self._flusher = thread

    def _flush_loop(self) -> None:
        period = min(COUNT_FLUSH_SECONDS, max(float(self.agent.config.exception_interval), 0.1))
        while not self._stop.wait(period):
            try:
                self.flush()
            except Exception as exc:
                internal_error("sending exception counts", exc)

    def _after_fork(self) -> None:
        """In a forked child: the parent sends its own counts and the thread did not survive."""
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._flusher = None
        for group in self._groups.values():
            group.pending, group.first_pending = 0, None


class _Group:
    """What the capture remembers about one fingerprint (plain data only)."""

    __slots__ = ("first_pending", "last_pending", "pending", "snapshot_at", "summary")

    def __init__(self) -> None:
        self.snapshot_at: Optional[float] = None  # monotonic time of the last snapshot
        self.pending = 0  # exceptions since then that no event has counted yet
        self.first_pending: Optional[float] = None
        self.last_pending: Optional[float] = None
        self.summary: Optional[Dict[str, Any]] = None  # type, message, frames without locals


# --- reading exceptions without running application code --------------------------------


def _mark_captured(exc: BaseException) -> bool:
    """Mark ``exc`` as captured; False if it already was (another hook saw it first).

    Exceptions take no weak references, and an id can be reused as soon as an exception
    dies, so the mark lives in the exception's own ``__dict__``.
    """
    attrs = _EXC_DICT(exc)
    if type(attrs) is not dict:
        return True
    if _MARK in attrs:
        return False
    attrs[_MARK] = True
    return True


# id(class) -> (class, is a failure): one lookup per exception; keyed by id because a
# metaclass's __hash__ would be the application's code. Cleared when full.
_FAILURE_CLASSES: Dict[int, Tuple[type, bool]] = {}
_FAILURE_CLASSES_MAX = 1024


def _is_failure_class(cls: type, exc: BaseException) -> Tuple[type, bool]:
    """``(cls, verdict of _is_failure)``, remembered per exception class."""
    known = _FAILURE_CLASSES.get(id(cls))
    if known is not None and known[0] is cls:
        return known
    known = (cls, _is_failure(exc))
    if len(_FAILURE_CLASSES) >= _FAILURE_CLASSES_MAX:
        _FAILURE_CLASSES.clear()
    _FAILURE_CLASSES[id(cls)] = known
    return known


def _is_failure(exc: BaseException) -> bool:
    """Whether to capture ``exc``: not an interruption, an exit or a cancelled task."""
    if not isinstance(exc, BaseException) or isinstance(exc, _NOT_FAILURES):
        return False
    asyncio = sys.modules.get("asyncio")
    cancelled = getattr(asyncio, "CancelledError", None)
    return not (isinstance(cancelled, type) and isinstance(exc, cancelled))


def _chain(
    exc: BaseException, tb: Optional[TracebackType]
) -> List[Tuple[BaseException, Optional[TracebackType]]]:
    """``exc`` then its causes (``__cause__``, else ``__context__`` unless suppressed)."""
    chain = [(exc, tb if tb is not None else _TRACEBACK(exc))]
    if _CAUSE(exc) is None and (_SUPPRESS_CONTEXT(exc) or _CONTEXT(exc) is None):
        return chain  # the common case, without the loop's bookkeeping
    seen = [id(exc)]  # few: a list is cheaper than a set
    current = exc
    while len(chain) < MAX_CHAIN:
        following = _CAUSE(current)
        if following is None and not _SUPPRESS_CONTEXT(current):
            following = _CONTEXT(current)
        if not isinstance(following, BaseException) or id(following) in seen:
            break
        seen.append(id(following))
        chain.append((following, _TRACEBACK(following)))
        current = following
    return chain


def _stack(tb: Optional[TracebackType]) -> Stack:
    """The traceback's frames and what kind of code each runs, innermost first, without the
    agent's own frames."""
    stack: Stack = []
    add = stack.append
    kinds = frame_kinds
    while tb is not None:
        frame = tb.tb_frame
        filename = frame.f_code.co_filename
        kind = kinds.get(filename) or frame_kind(filename)
        if kind != AGENT:
            line = tb.tb_lineno  # an int, or None (3.11+) for an instruction without a line
            add((frame, (frame.f_lineno or 0) if line is None else line, kind))
        tb = tb.tb_next
    stack.reverse()
    return stack


def _drop_locals_snapshots(frames: List[FrameType]) -> None:
    """Before 3.13, reading ``frame.f_locals`` of a function leaves a dict on the frame with
    the values of that moment; in a frame that keeps running (the one that caught and
    logged the exception) it would keep them alive after the code deleted them. Every
    reader refreshes that dict from the frame first, so emptying it loses nothing, unless
    the application holds it (``ctx = locals()``): then it is left alone."""
    if _LOCALS_ARE_PROXIES:
        return
    for frame in frames:
        if not frame.f_code.co_flags & CO_OPTIMIZED:  # module or class: the real namespace
            continue
        try:
            snapshot = frame.f_locals
            # References: the frame, `snapshot` and getrefcount's argument.
            if _getrefcount(snapshot) <= 3:
                snapshot.clear()
        except Exception as exc:
            internal_error("releasing a frame's locals", exc)


def _message(exc: BaseException) -> str:
    """``exc.args`` rendered from builtin scalars only; other arguments show their type.

    ``str(exc)`` would run the application's ``__str__`` (or the ``repr`` of an argument).
    """
    try:
        args = _ARGS(exc)
        if type(args) is not tuple or not args:
            return ""
        if len(args) == 1 and type(args[0]) is str and not isinstance(exc, KeyError):
            text = args[0]
        else:
            parts = [_render_arg(arg) for arg in args[:20]]
            text = parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."
    except Exception as failure:
        internal_error("rendering an exception's message", failure)
        return ""


def _render_arg(arg: object) -> str:
    if type(arg) in _SCALARS:
        try:
            return repr(arg[:MAX_MESSAGE] if type(arg) is str else arg)
        except ValueError:  # an int too long for str() (3.11+)
            return "<int>"
    return f"<{type_name(type(arg))}>"


def _plain_frame(frame: FrameType, line: int, kind: str) -> Dict[str, Any]:
    """A frame without locals, for count events."""
    code = frame.f_code
    plain = {
        "file": code.co_filename,
        "line": line,
        "function": getattr(code, "co_qualname", code.co_name),  # as the Capturer names it
        "module": module_name(frame),
        "app": kind == APP,
    }
    if kind != APP:
        plain["library"] = kind
    return plain


# --- process hooks -------------------------------------------------------------------------


class _Chained:
    """One replaceable hook of the process, wrapped around the one that was there before.

    It is removed only if it is still the outermost; otherwise whoever wrapped it keeps
    calling it, and it just forwards (nothing is active).
    """

    def __init__(
        self,
        read: Callable[[], Any],
        write: Callable[[Any], None],
        wrap: Callable[[Any], Any],
    ) -> None:
        self.read = read
        self.write = write
        self.wrap = wrap
        self.hook: Any = None
        self.previous: Any = None

    def install(self) -> None:
        if self.hook is not None and self.read() is self.hook:
            return
        # Not installed, or someone else's hook was put on top of ours (wrapping or replacing
        # it: there is no telling): wrap what is there now. An exception seen twice is
        # captured once.
        self.previous = self.read()
        self.hook = self.wrap(self.previous)
        self.write(self.hook)

    def uninstall(self) -> None:
        if self.hook is not None and self.read() is self.hook:
            self.write(self.previous)
            self.hook = None
            self.previous = None


def _wrap_excepthook(previous: Callable[..., Any]) -> Callable[..., Any]:
    def peephole_excepthook(exc_type: type, exc: BaseException, tb: Optional[TracebackType]) -> Any:
        capture_active(exc, "uncaught", tb)
        return previous(exc_type, exc, tb)

    return peephole_excepthook


def _wrap_threading_excepthook(previous: Callable[..., Any]) -> Callable[..., Any]:
    def peephole_threading_excepthook(args: Any) -> Any:
        capture_active(args.exc_value, "thread", args.exc_traceback)
        return previous(args)

    return peephole_threading_excepthook


def _wrap_record_factory(previous: Callable[..., Any]) -> Callable[..., Any]:
    """``logging`` calls the record factory for every record of every logger that is
    enabled for the level, whatever its handlers or ``propagate``; ``exc_info`` is its
    7th argument, already turned into a ``(type, value, traceback)`` tuple."""

    def peephole_record_factory(*args: Any, **kwargs: Any) -> Any:
        record = previous(*args, **kwargs)
        if _active is not None:
            exc_info = args[6] if len(args) > 6 else kwargs.get("exc_info")
            if type(exc_info) is tuple and len(exc_info) == 3:
                capture_active(exc_info[1], "logging", exc_info[2])
        return record

    return peephole_record_factory


def _wrap_call_exception_handler(previous: Callable[..., Any]) -> Callable[..., Any]:
    """Every exception an asyncio loop reports (a task whose exception was never retrieved,
    a failing callback) goes through ``call_exception_handler``, whatever handler is set."""

    def call_exception_handler(loop: Any, context: Any) -> Any:
        if _active is not None and type(context) is dict:
            exc = context.get("exception")
            if isinstance(exc, BaseException):
                capture_active(exc, "asyncio")
        return previous(loop, context)

    return call_exception_handler


def _set_excepthook(hook: Any) -> None:
    sys.excepthook = hook


def _set_threading_excepthook(hook: Any) -> None:
    threading.excepthook = hook


_SYS_HOOK = _Chained(lambda: sys.excepthook, _set_excepthook, _wrap_excepthook)
_THREAD_HOOK = _Chained(
    lambda: threading.excepthook, _set_threading_excepthook, _wrap_threading_excepthook
)
_LOGGING_HOOK: Optional[_Chained] = None
_ASYNCIO_HOOK: Optional[_Chained] = None


def _hook_logging(logging: ModuleType) -> None:
    global _LOGGING_HOOK
    if _LOGGING_HOOK is None:
        _LOGGING_HOOK = _Chained(
            logging.getLogRecordFactory, logging.setLogRecordFactory, _wrap_record_factory
        )
    _LOGGING_HOOK.install()


def _hook_asyncio(base_events: ModuleType) -> None:
    global _ASYNCIO_HOOK
    loop_class = base_events.BaseEventLoop
    if _ASYNCIO_HOOK is None:
        _ASYNCIO_HOOK = _Chained(
            lambda: loop_class.__dict__["call_exception_handler"],
            lambda method: setattr(loop_class, "call_exception_handler", method),
            _wrap_call_exception_handler,
        )
    _ASYNCIO_HOOK.install()


def _install_hooks() -> None:
    _SYS_HOOK.install()
    _THREAD_HOOK.install()
    integrations.on_import("logging", _hook_logging)
    integrations.on_import("asyncio.base_events", _hook_asyncio)
    integrations.enable_frameworks()


def _uninstall_hooks() -> None:
    integrations.cancel(_hook_logging)
    integrations.cancel(_hook_asyncio)
    integrations.disable_frameworks()
    for hook in (_SYS_HOOK, _THREAD_HOOK, _LOGGING_HOOK, _ASYNCIO_HOOK):
        if hook is not None:
            hook.uninstall()


def _after_fork_in_child() -> None:
    fingerprints.after_fork_in_child()
    _capturing.clear()  # the parent's other threads are gone; a new one may get their ident
    capture = _active
    if capture is not None:
        capture._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
