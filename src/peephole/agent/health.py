"""The agent's own failures: counted, logged once, and reported with the instance status.

Every hook of the agent catches everything so the application never sees an agent bug; a
failure caught there must still never be silent (as sentry-python's
``capture_internal_exceptions``). :func:`internal_error` records one: it counts it and keeps
the last one's place and type, nothing else, so it is safe and cheap on any thread,
including inside a probe hit. The housekeeping thread then logs each new place once on the
``peephole`` logger (:func:`log_new`; never printed by the agent itself, never a warning),
and the transport sends :func:`snapshot` with the probe statuses, so the server and CLI show
"agent internal errors: N, last: ...".

Events that could not be sent before the process exited are counted here too
(:func:`abandoned`), and reported in the last message.

Nothing is paid while nothing fails: callers use a plain ``try``/``except`` and call
:func:`internal_error` in the handler.
"""

from __future__ import annotations

import logging
import threading
from typing import List, Optional, Set

from peephole.protocol import AgentHealth

__all__ = ["abandoned", "internal_error", "log_new", "logger", "reset_after_fork", "snapshot"]

logger = logging.getLogger("peephole")

MAX_TEXT = 300  # characters of an error's description kept and reported


class _Health:
    """Process-wide counters (a forked child starts again from zero)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.errors = 0
        self.last: Optional[str] = None
        self.abandoned = 0
        self.places: Set[str] = set()  # where errors happened
        self.unlogged: List[str] = []  # first description of each place not logged yet


_health = _Health()


def internal_error(where: str, exc: BaseException) -> None:
    """Count a failure of the agent caught at ``where`` (never raises, never logs here)."""
    try:
        text = f"{where}: {describe(exc)}"[:MAX_TEXT]
        health = _health
        with health.lock:
            health.errors += 1
            health.last = text
            if where not in health.places:
                health.places.add(where)
                health.unlogged.append(text)
    except Exception:  # the last resort: counting itself failed
        pass


def abandoned(count: int) -> None:
    """Count events that were still waiting to be sent when the process exited."""
    if count > 0:
        with _health.lock:
            _health.abandoned += count


def snapshot() -> AgentHealth:
    """The counts so far, as the ``status`` message carries them."""
    health = _health
    with health.lock:
        return AgentHealth(health.errors, health.last, health.abandoned)


def log_new() -> None:
    """Log each place that failed for the first time, once (from the housekeeping thread)."""
    health = _health
    with health.lock:
        pending, health.unlogged = health.unlogged, []
    for text in pending:
        logger.error("peephole: internal error (counted, reported to the server): %s", text)


def reset_after_fork() -> None:
    """In a forked child: a new instance, whose counts start at zero."""
    global _health
    _health = _Health()


def describe(exc: BaseException) -> str:
    """``Type: message`` without running the exception's code (``str()`` could): the
    message is the first argument only when it is a plain ``str``."""
    args = BaseException.__dict__["args"].__get__(exc)
    first = args[0] if type(args) is tuple and args else None
    name = type(exc).__name__
    return f"{name}: {first}" if type(first) is str and first else name
