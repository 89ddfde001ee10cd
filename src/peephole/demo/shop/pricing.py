"""Discounts that do not need a coupon, and shipping."""

from __future__ import annotations

from peephole.demo.shop.cart import Cart

BULK_MIN_ITEMS = 5  # carts of 5 items or more get the bulk discount
BULK_PERCENT = 10
FREE_SHIPPING_CENTS = 5000  # orders of $50 or more ship free
SHIPPING_BASE_CENTS = 499
SHIPPING_PER_KG_CENTS = 150


def bulk_discount_cents(cart: Cart) -> int:
    """The bulk discount: ``BULK_PERCENT`` off carts with ``BULK_MIN_ITEMS`` items or more."""
    items = cart.item_count
    if items > BULK_MIN_ITEMS:
        return cart.subtotal_cents * BULK_PERCENT // 100
    return 0


def shipping_cents(cart: Cart, paid_cents: int) -> int:
    """Shipping for what is left to pay after discounts; heavy parcels cost more."""
    if paid_cents >= FREE_SHIPPING_CENTS:
        return 0
    grams = sum(line.product.weight_grams * line.quantity for line in cart.lines)
    return SHIPPING_BASE_CENTS + SHIPPING_PER_KG_CENTS * (grams // 1000)


__all__ = [
    "BULK_MIN_ITEMS",
    "BULK_PERCENT",
    "bulk_discount_cents",
    "shipping_cents",
]  # at the end: the docs cite this module's line numbers
