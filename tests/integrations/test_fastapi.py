"""FastAPI (Starlette): failing routes, served by uvicorn, become grouped exceptions."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from integrations.capture_harness import Harness, serve_asgi


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, Any]:
        quantity = order_id + 1
        if quantity:
            raise ValueError("out of stock")
        return {}

    @app.get("/sync/{order_id}")
    def sync_order(order_id: int) -> dict[str, Any]:
        warehouse = "north"
        raise KeyError(warehouse)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"ok": True}

    return app


def test_failing_routes_are_grouped_with_their_locals(capturing: Harness) -> None:
    with serve_asgi(make_app()) as url:
        statuses = [httpx.get(f"{url}/orders/{n}").status_code for n in (1, 2, 3)]
        statuses.append(httpx.get(f"{url}/sync/1").status_code)
        assert httpx.get(f"{url}/health").status_code == 200
    capturing.exceptions.flush()
    assert statuses == [500, 500, 500, 500]
    events = capturing.events
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["exc_type"], []).append(event)
    assert set(by_type) == {"ValueError", "KeyError"}
    assert sum(e["count"] for e in by_type["ValueError"]) == 3
    assert len({e["fingerprint"] for e in by_type["ValueError"]}) == 1
    snapshot = by_type["ValueError"][0]
    assert snapshot["origin"] == "starlette"
    route = snapshot["frames"][0]
    assert route["function"].endswith("order") and route["locals"]["quantity"]["v"] == 2
    [sync] = by_type["KeyError"]
    assert sync["message"] == "'north'"
    assert sync["frames"][0]["locals"]["warehouse"]["v"] == "north"
