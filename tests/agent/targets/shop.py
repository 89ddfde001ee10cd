"""A small shop: every kind of code a probe must reach."""

from __future__ import annotations

import functools
import threading
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List


def total(items: List[float]) -> float:
    amount = 0.0  # @total-start
    for price in items:  # @total-for
        amount += price  # @total-body
    result = max(  # @multi-first
        amount,  # @multi-middle
        0.0,
    )
    return result  # @total-return


class Cart:
    tax = 0.2

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: List[float] = []

    def add(self, price: float) -> int:
        self.items.append(price)  # @method
        return len(self.items)

    @classmethod
    def empty(cls, owner: str) -> Cart:
        cart = cls(owner)  # @class-method
        return cart

    @staticmethod
    def with_tax(amount: float) -> float:
        taxed = amount * 1.2  # @static-method
        return taxed


def make_discount(rate: float) -> Callable[[float], float]:
    def discount(amount: float) -> float:
        reduced = amount * (1 - rate)  # @closure
        return reduced

    return discount


def logged(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    return wrapper


@logged
def checkout(cart: Cart, coupon: str = "") -> Dict[str, Any]:
    receipt = {"owner": cart.owner, "total": total(cart.items)}  # @decorated
    return receipt


def countdown(n: int) -> Iterator[int]:
    while n > 0:
        received = yield n  # @generator
        n -= 1 if received is None else received


async def fetch_price(item: str) -> float:
    price = float(len(item))  # @coroutine
    return price


async def stream_prices(items: List[str]) -> AsyncIterator[float]:
    for item in items:
        price = float(len(item))  # @async-generator
        yield price


def in_thread(values: List[int]) -> List[int]:
    out: List[int] = []

    def work() -> None:
        doubled = [v * 2 for v in values]  # @thread
        out.extend(doubled)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out


def square(x: int) -> int:
    return x * x  # @one-liner


cube: Callable[[int], int] = lambda x: x * x * x  # noqa: E731  @lambda


def spin(flag: threading.Event, started: threading.Event, seen: List[int]) -> int:
    """Loop until ``flag`` is set, keeping ``seen[0]`` at the number of turns so far."""
    started.set()
    count = 0
    while not flag.is_set():
        count += 1  # @spin
        seen[0] = count
    return count


def guarded(value: int) -> int:
    try:
        checked = 10 // value  # @try-body
    except ZeroDivisionError:  # @except
        checked = -1  # @handler
    return checked


def hot(n: int) -> int:
    acc = 0
    for i in range(n):
        acc += i  # @hot
    return acc


def catalogue(count: int) -> Dict[str, int]:
    prices = {f"sku-{index}": index * 10 for index in range(count)}
    return prices  # @after-comprehension
