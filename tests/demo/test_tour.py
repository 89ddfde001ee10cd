"""The README's tour works: each bug of the demo shop found with the commands the docs give.

The launcher runs from this checkout (no traffic, a temporary data directory); the test plays
the customers itself, so each bug shows up at once instead of when the random traffic gets
to it. Every probe is placed with the CLI, exactly as the README and the quickstart write it.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from peephole.demo.launcher import free_port
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
QUICKSTART = (ROOT / "docs" / "quickstart.md").read_text()


class Tour:
    def __init__(self, port: int, shop_port: int, token: str) -> None:
        self.shop = f"http://127.0.0.1:{shop_port}"
        self.env = dict(os.environ, PEEPHOLE_URL=f"http://127.0.0.1:{port}", PEEPHOLE_TOKEN=token)

    def peephole(self, *args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "peephole.cli.main", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"peephole {shlex.join(args)}: {result.stderr}"
        return json.loads(result.stdout)

    def from_docs(self, start: str, page: str = README) -> Any:
        """Run the command of ``page`` that begins with ``start`` (continuations joined)."""
        text = page.replace("\\\n", " ")
        line = next(line for line in text.splitlines() if line.startswith(start))
        command = line.split("  #")[0]
        return self.peephole(*shlex.split(command)[1:])

    def checkout(self, items: List[Tuple[str, int]], coupon: Any = None) -> int:
        cart = self.call("POST", "/carts", {})[1]
        for product_id, quantity in items:
            self.call(
                "POST",
                f"/carts/{cart['id']}/items",
                {"product_id": product_id, "quantity": quantity},
            )
        return self.call("POST", f"/carts/{cart['id']}/checkout", {"coupon": coupon})[0]

    def call(self, method: str, path: str, body: Any) -> Tuple[int, Any]:
        request = urllib.request.Request(
            self.shop + path, data=json.dumps(body).encode(), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    data_dir = tmp_path_factory.mktemp("demo")
    port, shop_port = free_port(), free_port()
    output = data_dir / "launcher.out"
    with open(output, "wb") as out:
        launcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "peephole.demo.launcher",
                "--port",
                str(port),
                "--shop-port",
                str(shop_port),
                "--no-traffic",
                "--data-dir",
                str(data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _until(
            lambda: "Ctrl-C stops everything" in output.read_text(),
            90,
            lambda: f"the demo did not start:\n{output.read_text()}",
        )
        token = json.loads((data_dir / "credentials.json").read_text())["admin_token"]
        yield Tour(port, shop_port, token)
        os.killpg(launcher.pid, signal.SIGINT)
        assert launcher.wait(45) == 0, output.read_text()
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def _until(check: Callable[[], Any], seconds: float, why: Callable[[], str]) -> Any:
    return wait_until(check, seconds, why, interval=0.3)


def _at(event: Dict[str, Any], pointer: str) -> Any:
    """The value a ``ref`` points at: a JSON Pointer (RFC 6901) into the event."""
    node: Any = event
    for part in pointer.split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _fields(value: Dict[str, Any]) -> Dict[str, Any]:
    """A captured object's scalar fields as plain values."""
    return {name: field.get("v") for name, field in value["fields"].items()}


def test_the_service_is_there(tour: Tour) -> None:
    (shop,) = tour.from_docs("peephole services")
    assert shop["name"] == "shop" and shop["instances"] == 1
    assert shop["versions"] == ["1.0.0"] and shop["environments"] == ["demo"]


def test_the_intermittent_500(tour: Tour) -> None:
    probe = tour.from_docs("peephole tracepoint add shop/checkout.py")
    assert probe["summary"] == "active on 1 of 1 instance", probe
    assert tour.checkout([("bk-101", 1), ("kt-301", 1)], "SPRING10") == 201  # condition false
    assert tour.checkout([("bk-101", 1), ("gc-401", 1)], "SPRING10") == 500
    events = _until(
        lambda: tour.peephole("snapshots", "list", "--probe", probe["id"])["events"],
        30,
        lambda: "no snapshot of the failing checkout",
    )
    assert len(events) == 1
    locals_ = events[0]["frames"][0]["locals"]
    coupon = locals_["coupon"]
    assert _fields(coupon)["code"] == "SPRING10"
    assert "gift-cards" not in json.dumps(coupon["fields"]["rates"])
    line = locals_["line"]  # the cart line, or a reference to where `lines` showed it
    shown = line if "fields" in line else _at(events[0], line["ref"])
    assert _fields(shown["fields"]["product"])["category"] == "gift-cards"
    groups = _until(
        lambda: [g for g in tour.peephole("exceptions", "list") if "KeyError" in g["exc_type"]],
        30,
        lambda: "the KeyError was not captured",
    )
    assert groups[0]["count"] >= 1


def test_the_wrong_discount(tour: Tour) -> None:
    tour.from_docs("peephole logpoint add shop/pricing.py")
    assert tour.checkout([("gm-203", 5)]) == 201

    def lines() -> List[str]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "peephole.cli.main",
                "events",
                "tail",
                "--type",
                "log",
                "--json",
            ],
            env=tour.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return [json.loads(line)["message"] for line in result.stdout.splitlines()]

    _until(
        lambda: "no bulk discount for cart of 5 items" in lines(),
        30,
        lambda: f"no log line for the 5-item cart: {lines()}",
    )


def test_the_slow_checkout(tour: Tour) -> None:
    probe = tour.from_docs("peephole tracepoint add shop/inventory.py", QUICKSTART)
    assert tour.checkout([("bk-102", 12), ("gm-203", 2)]) == 201
    events = _until(
        lambda: tour.peephole("snapshots", "list", "--probe", probe["id"])["events"],
        30,
        lambda: "no snapshot of the big cart",
    )
    watches = {watch["expr"]: watch["value"]["v"] for watch in events[0]["watches"]}
    assert watches == {"line.quantity": 12, "line.product.id": "bk-102"}
    assert len(events) == 1  # the 2-unit line did not meet the condition
