"""The agent's clock: the real time functions, taken when the agent loads.

Applications patch their clock: freezegun (common in test suites) replaces ``time.time``,
``time.monotonic`` and ``time.perf_counter_ns`` in the ``time`` module, and also every module
attribute that holds one of them. An agent that read that clock would stamp events with the
frozen date and, after a jump, leave its rate limits ~1e18 tokens in debt. So the agent reads
time only through a :class:`Clock`, whose functions are stored in the instance (which
freezegun does not walk) and in ``__init__``'s defaults, both taken when this module loads.

Limits and expiries take a :class:`Clock` as an argument, so tests pass one they move by
hand instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["NS", "REAL", "Clock"]

NS = 1_000_000_000


class Clock:
    """Monotonic and CPU-timing nanoseconds, and the wall clock in epoch seconds."""

    __slots__ = ("monotonic_ns", "perf_ns", "wall")

    def __init__(
        self,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        perf_ns: Callable[[], int] = time.perf_counter_ns,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic_ns = monotonic_ns
        self.perf_ns = perf_ns  # for spans of time spent in probes (the CPU budget)
        self.wall = wall  # for event times and expiries

    def monotonic(self) -> float:
        """Monotonic seconds (for deadlines and quiet periods)."""
        return self.monotonic_ns() / NS


REAL = Clock()
