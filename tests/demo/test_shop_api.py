"""The shop's HTTP API, over a real socket."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

from demo.conftest import ShopClient
from peephole.demo.shop.catalog import PRODUCTS


def test_health_and_catalog(shop: ShopClient) -> None:
    assert shop.call("GET", "/health") == (200, {"status": "ok"})
    status, products = shop.call("GET", "/products")
    assert status == 200 and len(products) == len(PRODUCTS)
    assert shop.call("GET", "/products/bk-101")[1]["name"] == "The Pragmatic Programmer"
    codes = {coupon["code"] for coupon in shop.call("GET", "/coupons")[1]}
    assert codes == {"WELCOME5", "SPRING10", "READER20"}


def test_cart_and_order_round_trip(shop: ShopClient) -> None:
    cart_id = shop.cart_with(("bk-101", 2), ("bk-101", 1), ("kt-303", 1))
    status, cart = shop.call("GET", f"/carts/{cart_id}")
    assert status == 200
    assert [(line["product_id"], line["quantity"]) for line in cart["lines"]] == [
        ("bk-101", 3),
        ("kt-303", 1),
    ]
    status, order = shop.call("POST", f"/carts/{cart_id}/checkout", {"coupon": "welcome5"})
    assert status == 201
    subtotal = 3 * 3999 + 2450
    assert order["subtotal_cents"] == subtotal
    assert order["discount_cents"] == (3 * 3999) * 5 // 100 + 2450 * 5 // 100
    assert order["shipping_cents"] == 0
    assert order["total_cents"] == subtotal - order["discount_cents"]
    assert shop.call("GET", f"/orders/{order['id']}") == (200, order)
    assert shop.call("GET", f"/carts/{cart_id}")[0] == 404  # a checked-out cart is gone


def test_small_orders_pay_shipping_by_weight(shop: ShopClient) -> None:
    cart_id = shop.cart_with(("kt-302", 1))  # 34.50, 2.6 kg
    status, order = shop.call("POST", f"/carts/{cart_id}/checkout", {})
    assert status == 201
    assert order["shipping_cents"] == 499 + 2 * 150
    assert order["total_cents"] == 3450 + 499 + 300


def test_client_mistakes_get_4xx_with_a_reason(shop: ShopClient) -> None:
    cart_id = shop.cart_with()
    assert shop.call("GET", "/products/nope") == (404, {"error": "no product 'nope'"})
    assert shop.call("GET", "/carts/abc")[0] == 404
    assert shop.call("GET", "/orders/abc")[0] == 404
    assert shop.call("GET", "/nowhere")[0] == 404
    assert shop.call("DELETE", "/products")[0] == 405
    items = f"/carts/{cart_id}/items"
    assert shop.call("POST", items, {"product_id": "bk-101", "quantity": 0})[0] == 400
    assert shop.call("POST", items, {"product_id": "bk-101", "quantity": "2"})[0] == 400
    assert shop.call("POST", items, {"quantity": 1})[0] == 400
    assert shop.call("POST", items, ["not", "an", "object"])[0] == 400
    assert shop.call("POST", f"/carts/{cart_id}/checkout", {}) == (
        400,
        {"error": f"cart {cart_id} is empty"},
    )
    shop.call("POST", items, {"product_id": "bk-101"})
    status, body = shop.call("POST", f"/carts/{cart_id}/checkout", {"coupon": "SPRNG10"})
    assert (status, body) == (400, {"error": "no coupon 'SPRNG10'"})
    assert shop.call("POST", f"/carts/{cart_id}/checkout", {"coupon": 5})[0] == 400


def test_the_shop_runs_as_a_program_and_stops_on_sigterm() -> None:
    shop = subprocess.Popen(
        [sys.executable, "-m", "peephole.demo.shop", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert shop.stdout is not None
        url = shop.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        shop.send_signal(signal.SIGTERM)
        assert shop.wait(10) == 0
        assert shop.stdout.read().strip() == "shop stopped"
    finally:
        if shop.poll() is None:
            shop.kill()
            shop.wait()
        if shop.stdout is not None:
            shop.stdout.close()
