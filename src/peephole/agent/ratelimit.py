"""Rate limits and the CPU budget that keep probes from hurting the application.

Both are checked on application threads inside probe hooks, so they take no lock on the
common path: a lost update between two threads can let one extra event through or refuse
one, which is fine for a limit that protects throughput.
"""

from __future__ import annotations

import time
from typing import Optional

_NS = 1_000_000_000


class TokenBucket:
    """``rate`` events per second, with bursts of up to ``burst`` (default: one second's worth)."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: Optional[float] = None) -> None:
        self.rate = max(float(rate), 0.0)
        self.burst = max(float(burst if burst is not None else rate), 1.0)
        self._tokens = self.burst
        self._last = time.monotonic_ns()

    def take(self) -> bool:
        """Take one token if there is one; refill by the time passed since the last take."""
        now = time.monotonic_ns()
        tokens = self._tokens + (now - self._last) * self.rate / _NS
        self._last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class CpuBudget:
    """Time spent in probes over a sliding second, against a fraction of one core.

    Two one-second windows approximate the sliding one: the previous window's spend is
    weighted by how much of it still overlaps the last second.
    """

    __slots__ = ("_current", "_previous", "_window_start", "limit_ns", "over")

    def __init__(self, fraction: float) -> None:
        self.limit_ns = int(max(fraction, 0.0) * _NS)
        self._window_start = time.perf_counter_ns()
        self._current = 0
        self._previous = 0
        self.over = False  # read by every hit; updated by add()

    def _roll(self, now: int) -> None:
        elapsed = now - self._window_start
        if elapsed >= _NS:
            self._previous = self._current if elapsed < 2 * _NS else 0
            self._current = 0
            self._window_start = now - (elapsed % _NS)

    def spent_ns(self, now: Optional[int] = None) -> int:
        """Estimated nanoseconds spent in probes during the last second."""
        now = time.perf_counter_ns() if now is None else now
        self._roll(now)
        overlap = 1.0 - (now - self._window_start) / _NS
        return int(self._current + self._previous * max(overlap, 0.0))

    def add(self, ns: int, now: int) -> None:
        """Count ``ns`` spent, ending at ``now`` (a ``time.perf_counter_ns()`` reading)."""
        if now - self._window_start >= _NS:
            self._roll(now)
        self._current += ns
        # The sum is an upper bound of the sliding spend: the exact figure only near the limit.
        if self._current + self._previous > self.limit_ns:
            self.over = self.spent_ns(now) > self.limit_ns
        else:
            self.over = False
