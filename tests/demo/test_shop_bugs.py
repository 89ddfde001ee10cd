"""The shop's bugs are real: each one reproduced with the data that triggers it.

These tests pin the bugs on purpose. The demo exists so people can find them with
tracepoints; a fix here would leave the tour with nothing to find.
"""

from __future__ import annotations

import logging
import time

import pytest

from demo.conftest import ShopClient
from peephole.demo.shop.cart import Cart
from peephole.demo.shop.catalog import find_product
from peephole.demo.shop.checkout import checkout
from peephole.demo.shop.inventory import Inventory
from peephole.demo.shop.pricing import BULK_MIN_ITEMS, BULK_PERCENT, bulk_discount_cents


def cart_of(*items: tuple[str, int]) -> Cart:
    cart = Cart(id="c1")
    for product_id, quantity in items:
        cart.add(find_product(product_id), quantity)
    return cart


def test_checkout_raises_for_spring_coupon_with_a_gift_card() -> None:
    cart = cart_of(("bk-101", 1), ("gc-401", 1))
    with pytest.raises(KeyError, match="gift-cards"):
        checkout(cart, "SPRING10", Inventory(query_seconds=0.0))


def test_the_same_cart_checks_out_with_other_coupons_or_none() -> None:
    for coupon in (None, "WELCOME5", "READER20"):
        order = checkout(cart_of(("bk-101", 1), ("gc-401", 1)), coupon, Inventory(0.0))
        assert order.total_cents > 0
    assert checkout(cart_of(("bk-101", 1)), "SPRING10", Inventory(0.0)).discount_cents == 399


def test_checkout_answers_500_over_http_only_for_that_combination(
    shop: ShopClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="shop")
    failing = shop.cart_with(("gc-402", 1), ("kt-301", 2))
    status, body = shop.call("POST", f"/carts/{failing}/checkout", {"coupon": "SPRING10"})
    assert (status, body) == (500, {"error": "internal server error"})
    assert "KeyError: 'gift-cards'" in caplog.text
    status, order = shop.call("POST", f"/carts/{failing}/checkout", {"coupon": "WELCOME5"})
    assert status == 201 and order["coupon"] == "WELCOME5"
    fine = shop.cart_with(("kt-301", 2))
    assert shop.call("POST", f"/carts/{fine}/checkout", {"coupon": "SPRING10"})[0] == 201


def test_bulk_discount_misses_carts_of_exactly_the_minimum() -> None:
    assert BULK_MIN_ITEMS == 5
    exactly = cart_of(("bk-101", 3), ("gm-203", 2))
    assert exactly.item_count == BULK_MIN_ITEMS
    assert bulk_discount_cents(exactly) == 0  # documented as "5 items or more": should be 10%
    more = cart_of(("bk-101", 3), ("gm-203", 3))
    assert bulk_discount_cents(more) == more.subtotal_cents * BULK_PERCENT // 100


def test_wrong_discount_shows_in_the_order(shop: ShopClient) -> None:
    five = shop.cart_with(("gm-203", 5))
    status, order = shop.call("POST", f"/carts/{five}/checkout", {})
    assert status == 201
    assert (order["item_count"], order["discount_cents"]) == (5, 0)


def test_reserving_stock_makes_one_query_per_unit_not_per_cart() -> None:
    inventory = Inventory(query_seconds=0.0)
    cart = cart_of(("bk-101", 20), ("kt-302", 30), ("gm-201", 1))
    inventory.reserve(cart.lines)
    assert inventory.queries == 51  # a single batched query would do
    assert inventory.available("bk-101") == 1_000_000 - 20


def test_big_carts_are_slow_in_proportion_to_their_units() -> None:
    inventory = Inventory(query_seconds=0.005)
    big = cart_of(("bk-101", 40), ("gm-202", 20))
    started = time.perf_counter()
    checkout(big, None, inventory)
    assert time.perf_counter() - started >= 60 * 0.005
