"""One probe at run time: what happens on the application thread when its statement starts.

Everything that can be decided in advance (expressions compiled, limits resolved, buckets
made) is decided at install, so a hit whose condition is false costs a few attribute reads,
the condition and two clock readings.
"""

from __future__ import annotations

import logging
import operator
import sys
import threading
import types
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from peephole import protocol
from peephole.agent import event_ids, otel, speedups
from peephole.agent.clock import REAL, Clock
from peephole.agent.config import AgentConfig
from peephole.agent.health import internal_error
from peephole.agent.placement.locate import CodeLocation
from peephole.agent.ratelimit import CpuBudget, TokenBucket
from peephole.agent.safe.access import CO_OPTIMIZED, readable_locals
from peephole.agent.safe.capture import Capturer, stack_of
from peephole.agent.safe.expressions import (
    Expression,
    ExpressionError,
    Template,
    compile_expression,
    compile_template,
)
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import (
    ACTIVE,
    DONE,
    LOGPOINT,
    PENDING,
    THROTTLED,
    Limits,
    ProbeSpec,
    ProbeStatus,
)

__all__ = ["THROTTLE_QUIET_NS", "ArmedProbe", "Shared", "after_fork"]

Emit = Callable[[Dict[str, Any], Optional[Tuple[str, str]]], None]
LIVE_STATES = (ACTIVE, THROTTLED)
THROTTLE_QUIET_NS = 1_000_000_000  # a throttled probe is active again after this long


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
SAMPLE = 16  # a false condition is timed once in this many hits
NAMESPACE_REFUSED = (
    "not run here: this code's variables are in a mapping of the application's own (a class "
    "body's namespace from a metaclass, or exec() with its own locals), and reading it would "
    "run the application's code"
)
# Threads inside a probe's capture: code it reaches (a logging handler with a probe of its
# own, say) does not re-enter the agent. A set of idents is cheaper than a threading.local.
_BUSY: Set[int] = set()
_get_ident = threading.get_ident
_modules = sys.modules
# What a template and watches read a frame's variables from: one at a time where the C
# speed-ups can (3.9, 3.10, 3.12), instead of f_locals, which copies every local before 3.13.
_variables: Callable[[types.FrameType], Any] = speedups.frame_vars or operator.attrgetter(
    "f_locals"
)


class Shared:
    """What all probes of one agent share: process-wide buckets, the CPU budget, the sink,
    and the clock every limit and timestamp reads."""

    def __init__(
        self,
        config: AgentConfig,
        emit: Emit,
        changed: Callable[[], None],
        clock: Clock = REAL,
    ) -> None:
        self.config = config
        self.emit = emit
        self.changed = changed
        self.clock = clock
        self.budget = CpuBudget(config.cpu_budget, clock)
        self.snapshot_bucket = TokenBucket(config.snapshot_process_rate, clock=clock)
        self.log_bucket = TokenBucket(config.log_process_rate, clock=clock)


class ArmedProbe:
    """A probe's spec, compiled parts, targets, state and counters.

    Slots: every hit reads several of these, and an instance dict of this many keys falls
    off 3.12+'s shared-keys fast path (a logpoint hit measured 1 us slower with one more)."""

    __slots__ = (
        "_lock",
        "bucket",
        "budget",
        "capturer",
        "captures",
        "clock",
        "condition",
        "condition_errors",
        "drops",
        "expires_at",
        "heals",
        "hit_limit",
        "hits",
        "is_log",
        "levelno",
        "limits",
        "live",
        "logger",
        "message",
        "path",
        "perf_ns",
        "process_bucket",
        "shared",
        "spec",
        "state",
        "targets",
        "template",
        "throttled_at",
        "time_ns",
        "watches",
    )

    def __init__(self, spec: ProbeSpec, shared: Shared) -> None:
        self.spec = spec
        self.shared = shared
        config = shared.config
        self.is_log = spec.kind == LOGPOINT
        self.state = PENDING
        self.message: Optional[str] = None
        self.path: Optional[str] = None
        self.heals = False  # in an error that placing it again may end (a file not there yet)
        self.targets: List[CodeLocation] = []
        self.hits = 0
        self.captures = 0
        self.drops = 0
        self.condition_errors = 0
        self.time_ns = 0
        self.clock = shared.clock
        self.perf_ns = shared.clock.perf_ns  # bound once: read by every timed hit
        self.throttled_at = 0  # clock.monotonic_ns() of the last drop
        self.live = False  # True while state is active or throttled: read on every hit
        self._lock = threading.Lock()
        self.hit_limit = _hit_limit(spec, config)
        self.expires_at = _expires_at(spec, config, self.clock.wall())
        rate = (
            spec.rate if spec.rate else (config.log_rate if self.is_log else config.snapshot_rate)
        )
        self.bucket = TokenBucket(rate, clock=self.clock)
        self.process_bucket = shared.log_bucket if self.is_log else shared.snapshot_bucket
        self.budget = shared.budget
        self.limits = spec.limits if spec.limits != Limits() else config.limits
        self.condition: Optional[Expression] = None
        self.watches: List[Expression] = []
        self.template: Optional[Template] = None
        self.capturer: Optional[Capturer] = None
        self.logger: Optional[logging.Logger] = None
        self.levelno = _LEVELS.get((spec.level or "").lower(), logging.INFO)

    def continue_from(self, previous: ArmedProbe) -> None:
        """This probe is a new version of ``previous`` (edited, disabled or enabled again):
        its counters carry on, so the hit limit counts the captures of every version."""
        with previous._lock:  # no capture of the old version can slip in after the copy
            previous.live = False
            self.hits, self.captures = previous.hits, previous.captures
            self.drops, self.time_ns = previous.drops, previous.time_ns

    @property
    def limit_reached(self) -> bool:
        return self.hit_limit is not None and self.captures >= self.hit_limit

    def after_fork(self, shared: Shared) -> None:
        """In a forked child: the new process's shared state, a fresh lock, zero counters."""
        self.shared = shared
        self.budget = shared.budget
        self.process_bucket = shared.log_bucket if self.is_log else shared.snapshot_bucket
        self._lock = threading.Lock()
        self.hits = self.captures = self.drops = self.condition_errors = self.time_ns = 0

    # --- setup (agent threads) ------------------------------------------------------------

    def prepare(self, redactor: Redactor) -> Optional[str]:
        """Compile expressions against ``redactor``; return the reason if one is refused."""
        spec = self.spec
        try:
            condition = compile_expression(spec.condition, redactor) if spec.condition else None
            watches = [compile_expression(w, redactor) for w in spec.watches if w.strip()]
            template = compile_template(spec.template, redactor) if spec.template else None
        except ExpressionError as exc:
            return f"expression refused: {exc}"
        except Exception as exc:
            return f"expression refused: {type(exc).__name__}: {exc}"
        if self.is_log and template is None:
            return "a logpoint needs a template"
        self.condition, self.watches, self.template = condition, watches, template
        self.capturer = Capturer(self.limits, redactor, self.clock)
        self.logger = logging.getLogger(spec.logger) if self.is_log and spec.logger else None
        return None

    def set_state(self, state: str, message: Optional[str] = None) -> None:
        self.state = state
        self.message = message
        self.live = state in LIVE_STATES

    def status(self) -> ProbeStatus:
        return ProbeStatus(
            probe_id=self.spec.id,
            state=self.state,
            message=self.message,
            version=self.spec.version,
            path=self.path,
            hits=self.hits,
            captures=self.captures,
            drops=self.drops,
            condition_errors=self.condition_errors,
            time_ns=self.time_ns,
        )

    # --- hits (application threads) -------------------------------------------------------

    def hit(self, frame: types.FrameType) -> None:
        """The armed statement is about to run in ``frame``. Never raises.

        Reading the clock costs more than a simple condition on some machines, so a hit
        whose condition is false is timed one time in ``SAMPLE`` and counted that many
        times over; a hit that goes on to capture is always timed. Every line here runs on
        each hit: keep it short.
        """
        if not self.live:
            return
        self.hits += 1
        try:
            if self.budget.over and self.budget.still_over():
                self._drop("the CPU budget of all probes is used up")
                return
            condition = self.condition
            if condition is not None:
                if self.hits % SAMPLE:
                    if not condition.evaluate_frame(frame):
                        return
                elif not self._timed_condition(condition, frame):
                    return
        except Exception as exc:
            self._condition_failed(exc)
            return
        self._fire(frame)

    def hit_in_namespace(self, frame: types.FrameType) -> None:
        """:meth:`hit` for a module or class body or exec()'d code, whose variables live in a
        mapping: its condition, watches and template read them only where that mapping is
        a plain dict that reading cannot change (``readable_locals``); elsewhere the probe
        captures the stack without them, or, when it needs them, says why it cannot run.
        Functions' code is armed with :meth:`hit` itself: this check costs them nothing."""
        if (self.condition is None and not self.watches and not self.is_log) or readable_locals(
            frame
        ) is not None:
            self.hit(frame)
            return
        self.hits += 1
        if self.live and self.message != NAMESPACE_REFUSED:
            self.message = NAMESPACE_REFUSED
            self.shared.changed()

    def hook_for(self, code: types.CodeType) -> Callable[[types.FrameType], None]:
        """The hook to arm in ``code``: :meth:`hit` for a function's, else
        :meth:`hit_in_namespace`."""
        return self.hit if code.co_flags & CO_OPTIMIZED else self.hit_in_namespace

    def _timed_condition(self, condition: Expression, frame: types.FrameType) -> bool:
        perf_ns = self.perf_ns
        start = perf_ns()
        try:
            return bool(condition.evaluate_frame(frame))
        finally:
            end = perf_ns()
            spent = (end - start) * SAMPLE
            self.time_ns += spent
            self.budget.add(spent, end)

    def _fire(self, frame: types.FrameType) -> None:
        """Capture or log, timed, with this thread marked busy against re-entry."""
        me = _get_ident()
        busy = _BUSY
        if me in busy:
            return
        busy.add(me)
        perf_ns = self.perf_ns
        start = perf_ns()
        try:
            if not self._admit():
                return
            if self.is_log:
                self._log(frame, _variables(frame), frame.f_globals)
            else:
                self._snapshot(frame)
        except Exception as exc:
            internal_error("probe hit", exc)
        finally:
            end = perf_ns()
            self.time_ns += end - start
            self.budget.add(end - start, end)
            busy.discard(me)

    def _admit(self) -> bool:
        """Rates and the hit limit, under the probe's lock so the limit is exact."""
        with self._lock:
            if not self.live:
                return False
            if not self.bucket.take():
                self._drop(f"over the probe's rate of {self.bucket.rate:g}/s")
                return False
            if not self.process_bucket.take():
                self._drop(f"over the process-wide rate of {self.process_bucket.rate:g}/s")
                return False
            self.captures += 1
            if self.hit_limit is not None and self.captures >= self.hit_limit:  # limit_reached
                self.set_state(DONE, f"hit limit of {self.hit_limit} reached")
                self.shared.changed()
            elif (
                self.state == THROTTLED
                and self.clock.monotonic_ns() - self.throttled_at > THROTTLE_QUIET_NS
            ):
                self.set_state(ACTIVE)
                self.shared.changed()
            return True

    def _drop(self, why: str) -> None:
        self.drops += 1
        self.throttled_at = self.clock.monotonic_ns()
        if self.state != THROTTLED:
            self.set_state(THROTTLED, why)
            self.shared.changed()

    def _condition_failed(self, exc: BaseException) -> None:
        self.condition_errors += 1
        if self.condition_errors == 1:
            self.message = f"the condition failed (counted as false): {exc}"
            self.shared.changed()

    def _snapshot(self, frame: types.FrameType) -> None:
        limits = self.limits
        watches: List[Tuple[str, object]] = []
        if self.watches:  # (f_locals copies every local before 3.13: only when needed)
            f_locals, f_globals = _variables(frame), frame.f_globals
            for watch in self.watches:
                try:
                    watches.append((watch.source, watch.evaluate(f_locals, f_globals)))
                except Exception as exc:
                    watches.append((watch.source, exc))
        capturer = self.capturer
        assert capturer is not None
        captured = capturer.frames(
            stack_of(frame, limits.max_frames), range(limits.frames_with_locals), watches
        )
        spec = self.spec
        event = {
            "id": event_ids.new_id(),
            "type": protocol.SNAPSHOT,
            "time": self.clock.wall(),
            "probe_id": spec.id,
            "probe_version": spec.version,
            "file": self.path,
            "line": spec.line,
            "thread": threading.current_thread()._name,  # type: ignore[attr-defined] # .name, no property call
            **captured,
        }
        ids = otel.trace_ids() if otel.TRACE_MODULE in _modules else None  # no call without OTel
        self.shared.emit(event, ids)
        if ids is not None and self.shared.config.otel_span_events:
            otel.add_snapshot_event(event)

    def _log(self, frame: types.FrameType, f_locals: Any, f_globals: Dict[str, Any]) -> None:
        template = self.template
        assert template is not None
        message, errors = template.render(f_locals, f_globals)
        ids = otel.trace_ids() if otel.TRACE_MODULE in _modules else None  # no call without OTel
        spec = self.spec
        event = {  # new_event()'s keys, in one dict display: no keyword dict to copy
            "id": event_ids.new_id(),
            "type": protocol.LOG,
            "time": self.clock.wall(),
            "probe_id": spec.id,
            "probe_version": spec.version,
            "file": self.path,
            "line": spec.line,
            "level": spec.level,
            "message": message,
            "errors": errors,
            "thread": threading.current_thread()._name,  # type: ignore[attr-defined] # .name, no property call
        }
        self.shared.emit(event, ids)
        logger = self.logger
        if logger is not None:
            try:
                logger.log(self.levelno, message, extra=otel.log_extra(ids))
            except Exception as exc:
                internal_error("logpoint's logger", exc)


def after_fork() -> None:
    """In a forked child: only the forking thread survives, and it is not in a probe."""
    _BUSY.clear()


def _hit_limit(spec: ProbeSpec, config: AgentConfig) -> Optional[int]:
    limit = spec.hit_limit
    if limit is None and spec.kind != LOGPOINT:
        limit = config.tracepoint_hit_limit
    if limit is None:
        return None
    return max(1, min(int(limit), config.max_hit_limit))


def _expires_at(spec: ProbeSpec, config: AgentConfig, now: float) -> float:
    latest = now + config.max_expiry
    if spec.expires_at is None:
        return min(now + config.probe_expiry, latest)
    return min(float(spec.expires_at), latest)
