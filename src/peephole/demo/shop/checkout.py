"""Turning a cart into an order: discounts, coupon, shipping, stock."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from peephole.demo.shop.cart import Cart, CartLine
from peephole.demo.shop.coupons import Coupon, find_coupon
from peephole.demo.shop.inventory import Inventory
from peephole.demo.shop.pricing import bulk_discount_cents, shipping_cents


class EmptyCart(ValueError):
    """A checkout of a cart with nothing in it."""


@dataclass
class Order:
    id: str
    cart_id: str
    coupon: Optional[str]
    item_count: int
    subtotal_cents: int
    discount_cents: int
    shipping_cents: int
    total_cents: int

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def checkout(cart: Cart, coupon_code: Optional[str], inventory: Inventory) -> Order:
    """Price ``cart``, reserve its stock and return the order."""
    if not cart.lines:
        raise EmptyCart(f"cart {cart.id} is empty")
    coupon = find_coupon(coupon_code)
    subtotal = cart.subtotal_cents
    discount = bulk_discount_cents(cart)
    if coupon is not None:
        discount += coupon_discount_cents(coupon, cart.lines)
    paid = subtotal - discount
    shipping = shipping_cents(cart, paid)
    inventory.reserve(cart.lines)
    return Order(
        id=uuid.uuid4().hex[:12],
        cart_id=cart.id,
        coupon=coupon.code if coupon else None,
        item_count=cart.item_count,
        subtotal_cents=subtotal,
        discount_cents=discount,
        shipping_cents=shipping,
        total_cents=paid + shipping,
    )


def coupon_discount_cents(coupon: Coupon, lines: List[CartLine]) -> int:
    """What ``coupon`` takes off: its rate for each line's category."""
    discount = 0
    for line in lines:
        rate = coupon.rates[line.product.category]
        discount += line.total_cents * rate // 100
    return discount


__all__ = [
    "EmptyCart",
    "Order",
    "checkout",
    "coupon_discount_cents",
]  # at the end: the docs cite this module's line numbers
