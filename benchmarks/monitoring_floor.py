"""What CPython's sys.monitoring costs a probed function on its own (3.12+), whatever the probe.

A probe on 3.12+ enables ``INSTRUCTION`` events on the code object that holds its statement,
and its callback returns ``DISABLE`` for every other instruction (see docs/architecture.md).
This measures, per call of a function whose other line is a loop of N iterations (a
comprehension, as the issue's workload has), what that alone costs with ``INSTRUCTION``
events and, for comparison, with ``LINE`` events (which the agent used before: a line start
reached again from the same line never calls the callback, so it cannot be disabled): a
Python callback that does nothing at the probed place, against the same function without
events. The callback runs once per call (checked); the rest is the interpreter's.

    python benchmarks/monitoring_floor.py [--calls 20000]

Prints a Markdown table with the machine and the Python version.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from typing import Any, Callable, List

from agent_overhead import machine

TOOL_NAME = "peephole-benchmark"


def probed(a: int, n: int) -> List[int]:
    b = [i * a for i in range(n)]
    return b  # the probed line


PROBED_LINE = probed.__code__.co_firstlineno + 2


ROUNDS = 45  # short timed runs of each copy, in turns; the fastest of each counts


def _copy() -> Callable[[int, int], List[int]]:
    """``probed`` with a code object of its own: events are enabled per code object."""
    return types.FunctionType(probed.__code__.replace(), globals())


def _fastest(functions: List[Callable[[int, int], List[int]]], calls: int, n: int) -> List[float]:
    """Seconds per call of each function: short runs of each in turns, the fastest of each,
    so a machine whose pace changes while it measures moves them all alike."""
    best = [float("inf")] * len(functions)
    for _ in range(ROUNDS):
        for position, function in enumerate(functions):
            start = time.perf_counter()
            for index in range(calls):
                function(index, n)
            best[position] = min(best[position], time.perf_counter() - start)
    return [seconds / calls for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timed run")
    args = parser.parse_args()
    if sys.version_info < (3, 12):
        raise SystemExit("sys.monitoring is 3.12+")
    monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 - absent before 3.12
    tool = next(t for t in range(6) if monitoring.get_tool(t) is None)
    monitoring.use_tool_id(tool, TOOL_NAME)
    first = min(start for start, _, line in probed.__code__.co_lines() if line == PROBED_LINE)
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
    monitoring.register_callback(tool, events.LINE, on_line)
    monitoring.register_callback(tool, events.INSTRUCTION, on_instruction)
    plain, by_line, by_instruction = _copy(), _copy(), _copy()
    monitoring.set_local_events(tool, by_line.__code__, events.LINE)
    monitoring.set_local_events(tool, by_instruction.__code__, events.INSTRUCTION)
    print(f"Machine: {machine()}\n")
    print(
        "| loop iterations on the other line | without events | added per call, LINE "
        "| added per call, INSTRUCTION | callbacks per call |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in (0, 10, 50, 200):
        by_line(1, n)  # every other place disables itself on its first event
        by_instruction(1, n)
        fired[0] = 0
        without, line, instruction = _fastest([plain, by_line, by_instruction], args.calls, n)
        per_call = fired[0] / (args.calls * ROUNDS * 2)
        print(
            f"| {n} | {without * 1e9:.0f} ns | {(line - without) * 1e9:+.0f} ns "
            f"| {(instruction - without) * 1e9:+.0f} ns | {per_call:.2f} |"
        )
    for code in (by_line.__code__, by_instruction.__code__):
        monitoring.set_local_events(tool, code, 0)
    monitoring.register_callback(tool, events.LINE, None)
    monitoring.register_callback(tool, events.INSTRUCTION, None)
    monitoring.free_tool_id(tool)


if __name__ == "__main__":
    main()
