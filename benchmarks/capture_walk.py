"""Micro-benchmark of ``Capturer.frames`` alone on the "Speed" issue's snapshot.

The stack is the issue workload's (``agent_overhead.py --part issue``): a leaf with the same
ten locals at the bottom of 21 recursive frames; a capture records 20 frames and the locals
of the top three, under the default limits and redaction. Prints microseconds per capture
(the best of five timed runs). With ``--hits N --no-time`` it only captures ``N`` times after
the warm-up, for counting instructions under valgrind (subtract a run with ``--hits 0``).

``--changing`` gives the 50-item dict other values before every capture (one of 512 versions,
swapped in with one ``dict.update``, whose own time is printed too): real data changes between
hits, and a cache that only pays when it does not would show here as a loss.

    python benchmarks/capture_walk.py [--number 2000] [--changing]
    valgrind --tool=callgrind python benchmarks/capture_walk.py --hits 200 --no-time
"""

# ruff: noqa: F841 - the leaf's locals are only read through its frame
from __future__ import annotations

import argparse
import itertools
import sys
import timeit
import types
from typing import Any, Callable, Dict, List

from agent_overhead import Order, deep  # the issue workload's object and call chain

from peephole.agent.safe.capture import Capturer, stack_of
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits

_MEASURE: List[Callable[[types.FrameType], Any]] = []


def _leaf() -> Any:
    """The issue's probed function: its ten locals (no other), then ``_MEASURE`` runs on
    its frame."""
    user_id = 1042
    count = 3
    retries = 0
    total = 150.25
    paid = True
    name = "checkout"
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    order = Order()
    items = [1, 2, 3, 4, 5]
    limit = 100
    return _MEASURE[0](sys._getframe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="captures per timed run")
    parser.add_argument("--hits", type=int, default=200, help="captures before timing")
    parser.add_argument("--no-time", action="store_true", help="only the --hits captures")
    parser.add_argument(
        "--changing", action="store_true", help="other dict values before every capture"
    )
    parser.add_argument(
        "--warmup", type=int, default=1100, help="captures first (3.9 caches globals at 1024)"
    )
    args = parser.parse_args()
    limits = Limits()
    capturer = Capturer(limits, Redactor())
    locals_at = range(limits.frames_with_locals)

    def measure(frame: types.FrameType) -> float:
        prices: Dict[str, int] = frame.f_locals["prices"]
        versions = [{key: value + 1000 * n for key, value in prices.items()} for n in range(1, 513)]
        version = itertools.cycle(versions).__next__

        def change() -> None:
            prices.update(version())

        def capture() -> Any:
            return capturer.frames(stack_of(frame, limits.max_frames), locals_at)

        def change_and_capture() -> Any:
            prices.update(version())
            return capturer.frames(stack_of(frame, limits.max_frames), locals_at)

        timed = change_and_capture if args.changing else capture
        for _ in range(max(0, min(args.warmup + args.hits, 2_000_000))):
            timed()
        if args.no_time:
            return 0.0
        number = max(1, min(args.number, 1_000_000))
        if args.changing:
            update = min(timeit.repeat(change, number=number, repeat=5)) / number * 1e6
            print(f"dict.update alone (included below): {update:.2f} us")
        return float(min(timeit.repeat(timed, number=number, repeat=5)) / number * 1e6)

    _MEASURE.append(measure)
    micros: float = deep(20, _leaf)
    if not args.no_time:
        workload = "values changing per capture" if args.changing else "the same values"
        print(
            f"Python {sys.version.split()[0]}, {workload}: "
            f"Capturer.frames {micros:.2f} us per capture"
        )


if __name__ == "__main__":
    main()
