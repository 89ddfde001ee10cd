"""The shop's state: carts and orders in memory, stock in the inventory."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Dict, Optional

from peephole.demo.shop.cart import Cart
from peephole.demo.shop.checkout import Order, checkout
from peephole.demo.shop.inventory import Inventory

MAX_CARTS = 10_000  # the oldest carts are forgotten beyond this, so memory stays bounded
MAX_ORDERS = 10_000


class UnknownCart(LookupError):
    """A cart id the shop does not have (never created, or forgotten)."""


class Store:
    def __init__(self, inventory: Optional[Inventory] = None) -> None:
        self.inventory = inventory or Inventory()
        self.carts: Dict[str, Cart] = {}
        self.orders: Dict[str, Order] = {}
        self._lock = threading.Lock()

    def new_cart(self) -> Cart:
        cart = Cart(id=uuid.uuid4().hex[:12])
        with self._lock:
            self.carts[cart.id] = cart
            _trim(self.carts, MAX_CARTS)
        return cart

    def cart(self, cart_id: str) -> Cart:
        with self._lock:
            found = self.carts.get(cart_id)
        if found is None:
            raise UnknownCart(f"no cart {cart_id!r}")
        return found

    def check_out(self, cart_id: str, coupon_code: Optional[str]) -> Order:
        order = checkout(self.cart(cart_id), coupon_code, self.inventory)
        with self._lock:
            self.orders[order.id] = order
            self.carts.pop(cart_id, None)
            _trim(self.orders, MAX_ORDERS)
        return order


def _trim(items: Dict[str, Any], limit: int) -> None:
    while len(items) > limit:
        del items[next(iter(items))]


__all__ = ["Store", "UnknownCart"]  # at the end: the docs cite this module's line numbers
