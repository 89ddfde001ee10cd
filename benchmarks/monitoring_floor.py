"""What CPython's sys.monitoring costs a probed function on its own (3.12+), whatever the probe.

A probe on 3.12+ enables ``LINE`` events on the code object that holds its line, and its
callback returns ``DISABLE`` for every other line (see docs/architecture.md). This measures,
per call of a function whose other line is a loop of N iterations (a comprehension, as the
issue's workload has), what that alone costs: a Python callback that does nothing on the
probed line, against the same function without events. The callback runs once per call
(checked); the rest is the interpreter's.

    python benchmarks/monitoring_floor.py [--calls 200000]

Prints a Markdown table with the machine and the Python version.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, List

from agent_overhead import machine

TOOL_NAME = "peephole-benchmark"


def probed(a: int, n: int) -> List[int]:
    b = [i * a for i in range(n)]
    return b  # the probed line


PROBED_LINE = probed.__code__.co_firstlineno + 2


def _best(calls: int, n: int, repeat: int = 9) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for index in range(calls):
            probed(index, n)
        best = min(best, time.perf_counter() - start)
    return best / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per timing")
    args = parser.parse_args()
    if sys.version_info < (3, 12):
        raise SystemExit("sys.monitoring is 3.12+")
    monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 - absent before 3.12
    tool = next(t for t in range(6) if monitoring.get_tool(t) is None)
    monitoring.use_tool_id(tool, TOOL_NAME)
    fired = [0]

    def callback(code: Any, line: int) -> Any:
        if line != PROBED_LINE:
            return monitoring.DISABLE
        fired[0] += 1
        return None

    monitoring.register_callback(tool, monitoring.events.LINE, callback)
    code = probed.__code__
    print(f"Machine: {machine()}\n")
    print(
        "| loop iterations on the other line | without events | LINE events, callback "
        "on one line | added per call | callbacks per call |"
    )
    print("|---:|---:|---:|---:|---:|")
    measure: Callable[[int], float] = lambda n: _best(args.calls, n)  # noqa: E731
    for n in (0, 10, 50, 200):
        monitoring.set_local_events(tool, code, 0)
        without = measure(n)
        monitoring.set_local_events(tool, code, monitoring.events.LINE)
        probed(1, n)  # every other line disables itself on its first event
        fired[0] = 0
        with_events = measure(n)
        per_call = fired[0] / (args.calls * 9)
        print(
            f"| {n} | {without * 1e9:.0f} ns | {with_events * 1e9:.0f} ns "
            f"| {(with_events - without) * 1e9:+.0f} ns | {per_call:.2f} |"
        )
    monitoring.set_local_events(tool, code, 0)
    monitoring.register_callback(tool, monitoring.events.LINE, None)
    monitoring.free_tool_id(tool)


if __name__ == "__main__":
    main()
