"""What CPython's sys.monitoring costs a probed function on its own (3.12+), whatever the probe.

A probe on 3.12+ enables ``INSTRUCTION`` events on the code object that holds its statement,
and its callback returns ``DISABLE`` for every other instruction (see docs/architecture.md).
This measures, per call of a function whose other line is a loop of N iterations (a
comprehension, as the issue's workload has), what that alone costs with ``INSTRUCTION``
events and, for comparison, with ``LINE`` events (which the agent used before: a line start
reached again from the same line never calls the callback, so it cannot be disabled): a
Python callback that does nothing at the probed place, against the same function without
events. The callback runs once per call (checked); the rest is the interpreter's.

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
    code = probed.__code__
    first = min(start for start, _, line in code.co_lines() if line == PROBED_LINE)
    fired = [0]

    def on_line(code: Any, line: int) -> Any:
        if line != PROBED_LINE:
            return monitoring.DISABLE
        fired[0] += 1
        return None

    def on_instruction(code: Any, offset: int) -> Any:
        if offset != first:
            return monitoring.DISABLE
        fired[0] += 1
        return None

    events = monitoring.events
    kinds = (("LINE", events.LINE, on_line), ("INSTRUCTION", events.INSTRUCTION, on_instruction))
    for _, event, callback in kinds:
        monitoring.register_callback(tool, event, callback)
    print(f"Machine: {machine()}\n")
    print(
        "| loop iterations on the other line | without events | added per call, LINE "
        "| added per call, INSTRUCTION | callbacks per call |"
    )
    print("|---:|---:|---:|---:|---:|")
    measure: Callable[[int], float] = lambda n: _best(args.calls, n)  # noqa: E731
    for n in (0, 10, 50, 200):
        monitoring.set_local_events(tool, code, 0)
        without = measure(n)
        added: List[str] = []
        counts: List[str] = []
        for _, event, _ in kinds:
            monitoring.set_local_events(tool, code, 0)  # re-arms what was disabled
            monitoring.set_local_events(tool, code, event)
            probed(1, n)  # every other place disables itself on its first event
            fired[0] = 0
            added.append(f"{(measure(n) - without) * 1e9:+.0f} ns")
            counts.append(f"{fired[0] / (args.calls * 9):.2f}")
        print(f"| {n} | {without * 1e9:.0f} ns | {added[0]} | {added[1]} | {' / '.join(counts)} |")
    monitoring.set_local_events(tool, code, 0)
    for _, event, _ in kinds:
        monitoring.register_callback(tool, event, None)
    monitoring.free_tool_id(tool)


if __name__ == "__main__":
    main()
