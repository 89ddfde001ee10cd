"""Event ids for the agent: 32 hex digits, like ``uuid4().hex``, without its system call.

``uuid4()`` reads the kernel's random source on every call (a few microseconds per event on
the application thread); a random per-process prefix and a counter make ids that never repeat
within a process, and a forked child draws a new prefix so it never repeats its parent's.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["after_fork", "new_id"]

_prefix = os.urandom(8).hex()
_counter = itertools.count()


def new_id() -> str:
    """The next event id of this process."""
    return f"{_prefix}{next(_counter):016x}"


def after_fork() -> None:
    """In a forked child: a new prefix, so the child's ids never repeat the parent's."""
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


# Its own hook, not the agent's: a child must never repeat its parent's ids, even when the
# agent's after-fork work fails or an application built an Agent without peephole.agent.launch.
if hasattr(os, "register_at_fork"):  # POSIX only
    os.register_at_fork(after_in_child=after_fork)
