"""The shop's HTTP API, as a WSGI application that speaks JSON.

GET  /health                      {"status": "ok"}
GET  /products                    the catalog
GET  /products/<id>
GET  /coupons                     the coupon codes and what they do
POST /carts                       a new, empty cart
GET  /carts/<id>
POST /carts/<id>/items            {"product_id": "bk-101", "quantity": 2}
POST /carts/<id>/checkout         {"coupon": "SPRING10"} (or null): the order
GET  /orders/<id>
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from peephole.demo.shop.catalog import PRODUCTS, UnknownProduct, find_product
from peephole.demo.shop.checkout import EmptyCart
from peephole.demo.shop.coupons import COUPONS, UnknownCoupon
from peephole.demo.shop.inventory import OutOfStock
from peephole.demo.shop.store import Store, UnknownCart

log = logging.getLogger("shop")

MAX_BODY_BYTES = 64 * 1024

StartResponse = Callable[[str, List[Tuple[str, str]]], Any]
Handler = Callable[..., Tuple[int, Any]]

STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    413: "413 Content Too Large",
    500: "500 Internal Server Error",
}


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ShopApp:
    """Routes requests to handlers; turns known failures into 4xx and the rest into 500."""

    def __init__(self, store: Optional[Store] = None) -> None:
        self.store = store or Store()
        self.routes: List[Tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/health"), self.health),
            ("GET", re.compile(r"/products"), self.list_products),
            ("GET", re.compile(r"/products/([\w-]+)"), self.get_product),
            ("GET", re.compile(r"/coupons"), self.list_coupons),
            ("POST", re.compile(r"/carts"), self.create_cart),
            ("GET", re.compile(r"/carts/(\w+)"), self.get_cart),
            ("POST", re.compile(r"/carts/(\w+)/items"), self.add_item),
            ("POST", re.compile(r"/carts/(\w+)/checkout"), self.check_out),
            ("GET", re.compile(r"/orders/(\w+)"), self.get_order),
        ]

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body = self.dispatch(environ)
        except HTTPError as exc:
            status, body = exc.status, {"error": str(exc)}
        except Exception:
            log.exception("%s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            status, body = 500, {"error": "internal server error"}
        data = json.dumps(body).encode()
        start_response(
            STATUS_TEXT[status],
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def dispatch(self, environ: Dict[str, Any]) -> Tuple[int, Any]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/").rstrip("/")
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed = True
                continue
            try:
                if method == "POST":
                    return handler(_read_json(environ), *match.groups())
                return handler(*match.groups())
            except (UnknownProduct, UnknownCart) as exc:
                raise HTTPError(404, str(exc)) from None
            except (UnknownCoupon, EmptyCart, ValueError) as exc:
                raise HTTPError(400, str(exc)) from None
            except OutOfStock as exc:
                raise HTTPError(409, str(exc)) from None
        if allowed:
            raise HTTPError(405, f"{method} is not allowed on {path}")
        raise HTTPError(404, f"no route for {path or '/'}")

    def health(self) -> Tuple[int, Any]:
        return 200, {"status": "ok"}

    def list_products(self) -> Tuple[int, Any]:
        return 200, [asdict(product) for product in PRODUCTS]

    def get_product(self, product_id: str) -> Tuple[int, Any]:
        return 200, asdict(find_product(product_id))

    def list_coupons(self) -> Tuple[int, Any]:
        return 200, [
            {"code": coupon.code, "description": coupon.description} for coupon in COUPONS.values()
        ]

    def create_cart(self, body: Dict[str, Any]) -> Tuple[int, Any]:
        return 201, self.store.new_cart().to_dict()

    def get_cart(self, cart_id: str) -> Tuple[int, Any]:
        return 200, self.store.cart(cart_id).to_dict()

    def add_item(self, body: Dict[str, Any], cart_id: str) -> Tuple[int, Any]:
        cart = self.store.cart(cart_id)
        product = find_product(_field(body, "product_id", str))
        cart.add(product, _field(body, "quantity", int, default=1))
        return 200, cart.to_dict()

    def check_out(self, body: Dict[str, Any], cart_id: str) -> Tuple[int, Any]:
        coupon = body.get("coupon")
        if coupon is not None and not isinstance(coupon, str):
            raise ValueError("coupon must be a string or null")
        return 201, self.store.check_out(cart_id, coupon).to_dict()

    def get_order(self, order_id: str) -> Tuple[int, Any]:
        order = self.store.orders.get(order_id)
        if order is None:
            raise HTTPError(404, f"no order {order_id!r}")
        return 200, order.to_dict()


def _read_json(environ: Dict[str, Any]) -> Dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HTTPError(400, "bad Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise HTTPError(413, f"body over {MAX_BODY_BYTES} bytes")
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPError(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "body must be a JSON object")
    return body


def _field(body: Dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None or type(value) is not kind:
        raise ValueError(f"{name} must be a {kind.__name__}")
    return value


__all__ = ["ShopApp"]  # at the end: the docs cite this module's line numbers
