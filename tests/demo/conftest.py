from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any, Iterator, Optional, Tuple

import pytest

from peephole.demo.shop.app import ShopApp
from peephole.demo.shop.inventory import Inventory
from peephole.demo.shop.server import make_shop_server
from peephole.demo.shop.store import Store


class ShopClient:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Optional[Any] = None) -> Tuple[int, Any]:
        """One JSON request; the status and the decoded body, whatever the status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def cart_with(self, *items: Tuple[str, int]) -> str:
        status, cart = self.call("POST", "/carts", {})
        assert status == 201
        for product_id, quantity in items:
            status, _ = self.call(
                "POST",
                f"/carts/{cart['id']}/items",
                {"product_id": product_id, "quantity": quantity},
            )
            assert status == 200
        return str(cart["id"])


@pytest.fixture
def shop() -> Iterator[ShopClient]:
    """A real shop over HTTP on a free port, with a stock database that answers instantly."""
    server = make_shop_server("127.0.0.1", 0, ShopApp(Store(Inventory(query_seconds=0.0))))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield ShopClient(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()
    thread.join(5)
