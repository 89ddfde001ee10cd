"""Rate limits and the CPU budget that keep probes from hurting the application.

Both are checked on application threads inside probe hooks, so they take no lock on the
common path: a lost update between two threads can let one extra event through or refuse
one, which is fine for a limit that protects throughput.

Both slide with time and recover by themselves: a bucket refills as time passes, and the
budget forgets what was spent more than a second ago even while every hit is refused. They
read a :class:`~peephole.agent.clock.Clock` given to them (the real one by default), never
the application's ``time`` module, so a patched clock cannot throttle them for good.
"""

from __future__ import annotations

from typing import Optional

from peephole.agent.clock import NS, REAL, Clock

__all__ = ["CpuBudget", "TokenBucket"]


class TokenBucket:
    """``rate`` events per second, with bursts of up to ``burst`` (default: one second's worth)."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: Optional[float] = None, clock: Clock = REAL) -> None:
        self.rate = max(float(rate), 0.0)
        self.burst = max(float(burst if burst is not None else rate), 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock.monotonic_ns()

    def take(self) -> bool:
        """Take one token if there is one; refill by the time passed since the last take."""
        now = self._clock.monotonic_ns()
        elapsed = now - self._last
        self._last = now
        tokens = self._tokens + (elapsed * self.rate / NS if elapsed > 0 else 0.0)
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
    weighted by how much of it still overlaps the last second. ``over`` is what every hit
    reads; while it is set, :meth:`still_over` (called instead of spending) looks at the
    clock again, so the budget reopens as soon as the last second has room.
    """

    __slots__ = ("_current", "_previous", "_window_start", "clock", "limit_ns", "over")

    def __init__(self, fraction: float, clock: Clock = REAL) -> None:
        self.limit_ns = int(max(fraction, 0.0) * NS)
        self.clock = clock  # what times the probes spending this budget
        self._window_start = clock.perf_ns()
        self._current = 0
        self._previous = 0
        self.over = False  # read by every hit; updated by add() and still_over()

    def _roll(self, now: int) -> None:
        elapsed = now - self._window_start
        if elapsed >= NS:
            self._previous = self._current if elapsed < 2 * NS else 0
            self._current = 0
            self._window_start = now - (elapsed % NS)

    def spent_ns(self, now: Optional[int] = None) -> int:
        """Estimated nanoseconds spent in probes during the last second."""
        now = self.clock.perf_ns() if now is None else now
        self._roll(now)
        overlap = 1.0 - (now - self._window_start) / NS
        return int(self._current + self._previous * min(max(overlap, 0.0), 1.0))

    def add(self, ns: int, now: int) -> None:
        """Count ``ns`` spent, ending at ``now`` (a reading of the budget's clock)."""
        if now - self._window_start >= NS:
            self._roll(now)
        self._current += ns
        # The sum is an upper bound of the sliding spend: the exact figure only near the limit.
        if self._current + self._previous > self.limit_ns:
            self.over = self.spent_ns(now) > self.limit_ns
        else:
            self.over = False

    def still_over(self) -> bool:
        """While ``over``: is the last second still over the limit? (Reads the clock.)"""
        over = self.spent_ns() > self.limit_ns
        self.over = over
        return over
