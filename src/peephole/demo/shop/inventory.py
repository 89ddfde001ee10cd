"""Stock levels, kept in a (simulated) database that answers in a few milliseconds."""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable, Dict, Iterable, TypeVar

from peephole.demo.shop.cart import CartLine
from peephole.demo.shop.catalog import PRODUCTS

QUERY_SECONDS = 0.01  # one round trip to the stock database
OPENING_STOCK = 1_000_000

T = TypeVar("T")


class OutOfStock(Exception):
    """A product has fewer units left than the cart asks for."""


class Inventory:
    """Units in stock per product id; every read or write is one database query."""

    def __init__(self, query_seconds: float = QUERY_SECONDS) -> None:
        self.query_seconds = query_seconds
        self.queries = 0
        self._stock: Dict[str, int] = {product.id: OPENING_STOCK for product in PRODUCTS}
        self._lock = threading.Lock()

    def reserve(self, lines: Iterable[CartLine]) -> None:
        """Take the units of every line out of stock."""
        for line in lines:
            product_id = line.product.id
            for _ in range(line.quantity):
                self._query(functools.partial(self._take_one, product_id))

    def available(self, product_id: str) -> int:
        return self._query(lambda: self._stock.get(product_id, 0))

    def _take_one(self, product_id: str) -> None:
        left = self._stock.get(product_id, 0)
        if left < 1:
            raise OutOfStock(f"{product_id} is out of stock")
        self._stock[product_id] = left - 1

    def _query(self, operation: Callable[[], T]) -> T:
        """Run one statement against the stock database: a round trip, then the work."""
        time.sleep(self.query_seconds)
        with self._lock:
            self.queries += 1
            return operation()


__all__ = ["Inventory", "OutOfStock"]  # at the end: the docs cite this module's line numbers
