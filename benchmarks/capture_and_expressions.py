"""Micro-benchmark of the agent's per-hit work that does not depend on instrumentation.

Prints nanoseconds per operation for:
- a false condition (``user.id == 42 and total > 100``),
- a logpoint template with three expressions,
- a snapshot: a 20-frame stack, locals of the top 3 frames, the top frame with 10 locals
  including a 50-item dict and an object with 10 fields,
and, as a yardstick for the machine's speed, a plain Python loop building the same 50 dict
entries as dicts. Every loop is bounded; the whole run takes a few seconds.

    python benchmarks/capture_and_expressions.py [--number N]
"""

# ruff: noqa: F841 - the probed function's locals are only read through its frame
from __future__ import annotations

import argparse
import sys
import timeit
import types
from typing import Any, Callable, List, Tuple

from peephole.agent.safe.capture import Capturer, stack_of
from peephole.agent.safe.expressions import compile_expression, compile_template
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits


class User:
    def __init__(self) -> None:
        self.id = 7
        self.name = "ada"


class Order:
    def __init__(self) -> None:
        for index in range(10):
            setattr(self, f"field{index}", index if index % 2 else f"value {index}")


def _nested(depth: int, leaf: Callable[[], Any]) -> Any:
    if depth:
        return _nested(depth - 1, leaf)
    return leaf()


def _checkout(measure: Callable[[types.FrameType], Any]) -> Any:
    """The probed function: 10 locals, then ``measure`` is run on its frame."""
    user = User()
    total = 150.0
    items = [1, 2, 3]
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    order = Order()
    name = "checkout"
    count = 3
    ratio = 0.5
    flags = (True, False)
    note = None
    return measure(sys._getframe())


def _per_op(function: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=2000, help="loops per measurement")
    number = max(1, min(parser.parse_args().number, 1_000_000))
    redactor = Redactor()
    capturer = Capturer(Limits(), redactor)
    condition = compile_expression("user.id == 42 and total > 100", redactor)
    template = compile_template("user {user.id} total={total:.2f} items={len(items)}", redactor)

    def measure(frame: types.FrameType) -> List[Tuple[str, float]]:
        f_locals, f_globals = frame.f_locals, frame.f_globals
        prices = f_locals["prices"]

        def yardstick() -> Any:
            return [[{"t": "str", "v": k}, {"t": "int", "v": v}] for k, v in prices.items()]

        assert condition.evaluate(f_locals, f_globals) is False
        assert template.render(f_locals, f_globals) == ("user 7 total=150.00 items=3", [])
        assert len(stack_of(frame, 20)) == 20
        return [
            (
                "false condition",
                _per_op(lambda: condition.evaluate(f_locals, f_globals), number * 50),
            ),
            (
                "template, 3 expressions",
                _per_op(lambda: template.render(f_locals, f_globals), number * 10),
            ),
            (
                "snapshot (20 frames, 3 with locals)",
                _per_op(lambda: capturer.frames(stack_of(frame, 20), range(3)), number),
            ),
            ("yardstick: 50 dict entries as dicts", _per_op(yardstick, number)),
        ]

    rows = _nested(17, lambda: _checkout(measure))
    print(f"Python {sys.version.split()[0]}")
    for label, nanoseconds in rows:
        print(f"{label:40} {nanoseconds:12,.0f} ns")


if __name__ == "__main__":
    main()
