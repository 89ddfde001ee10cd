"""A clock the tests move by hand (as trio's MockClock), for limits that slide with time."""

from __future__ import annotations

from peephole.agent.clock import NS, Clock

EPOCH = 1_800_000_000.0  # what the wall clock reads at ``now_ns == 0``


class ManualClock(Clock):
    """Stands still until :meth:`advance`; ``tick_ns`` is added at every reading of the CPU
    timer (so each probe hit "costs" that much against the budget)."""

    __slots__ = ("now_ns", "tick_ns")

    def __init__(self, tick_ns: int = 0) -> None:
        super().__init__(self._monotonic_ns, self._perf_ns, self._wall)
        self.now_ns = 0
        self.tick_ns = tick_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * NS)

    def _monotonic_ns(self) -> int:
        return self.now_ns

    def _perf_ns(self) -> int:
        self.now_ns += self.tick_ns
        return self.now_ns

    def _wall(self) -> float:
        return EPOCH + self.now_ns / NS
