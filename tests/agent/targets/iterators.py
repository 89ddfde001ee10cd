"""Shapes of code where probes once missed hits on 3.9: ``__next__``, name-mangled methods,
generators, loops with ``continue``/``break``, ``try`` inside loops, ``with``, comprehensions."""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional


class Countdown:
    def __init__(self, start: int) -> None:
        self.current = start

    def __iter__(self) -> Countdown:
        return self

    def __next__(self) -> int:
        if self.current <= 0:
            raise StopIteration
        self.current -= 1
        return self.__shape(self.current)

    def __shape(self, value: int) -> int:
        if value % 3 == 0:
            return value * 2
        return value


class Ledger:
    def __init__(self) -> None:
        self.__entries: Dict[str, int] = {}

    def __add(self, key: str, amount: int) -> None:
        self.__entries[key] = self.__entries.get(key, 0) + amount

    def book(self, rows: List[str]) -> int:
        for row in rows:
            if not row:
                continue
            key, _, amount = row.partition("=")
            try:
                value = int(amount)
            except ValueError:
                value = 0
            else:
                value += 1
            finally:
                self.__add(key, 0)
            if value > 100:
                break
            self.__add(key, value)
        # fmt: off
        return sum(
            v
            for v in self.__entries.values()
            if v > 0
        )
        # fmt: on


def pairs(items: List[int]) -> Iterator[int]:
    iterator = iter(items)
    while True:
        try:
            first = next(iterator)
            second = next(iterator)
        except StopIteration:
            return
        yield first + second


def nested(rows: int) -> List[List[int]]:
    table = [[r * c for c in range(3)] for r in range(rows)]
    with contextlib.suppress(IndexError):
        table[rows + 1].append(0)
    lookup = {r: [c for c in row if c] for r, row in enumerate(table)}
    return [lookup[r] for r in lookup if r % 2 == 0]


# fmt: off
def maybe(value: Optional[int]) -> int:
    result = (
        value
        if value is not None
        else -1
    )
    while result > 10:
        result //= 2
    else:
        result += 0
    return result
# fmt: on
