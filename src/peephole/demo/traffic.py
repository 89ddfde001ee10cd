"""Shoppers for the demo shop: a few requests a second, on loopback only, bounded.

``python -m peephole.demo.traffic --url http://127.0.0.1:8000`` runs until it is stopped
(Ctrl-C or SIGTERM), or until it has sent ``--max-requests`` requests or run for
``--max-seconds``, whichever comes first.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from types import FrameType
from typing import Any, List, Optional
from urllib.parse import urlsplit

__all__ = ["MAX_RATE", "MAX_REQUESTS", "MAX_SECONDS", "Shopper", "check_loopback", "main"]

DEFAULT_RATE = 4.0  # requests per second
MAX_RATE = 50.0
MAX_REQUESTS = 1_000_000
MAX_SECONDS = 24 * 3600.0
REPORT_SECONDS = 30.0
COUPON_CHOICES = (None, None, None, "WELCOME5", "SPRING10", "READER20", "SPRNG10")


class Shopper:
    """Walks through the shop like a customer: a cart, a few products, a checkout."""

    def __init__(
        self,
        base_url: str,
        rate: float = DEFAULT_RATE,
        max_requests: int = MAX_REQUESTS,
        max_seconds: float = MAX_SECONDS,
        seed: Optional[int] = None,
    ) -> None:
        check_loopback(base_url)
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"the rate must be above 0 and at most {MAX_RATE:g} requests/s")
        self.base_url = base_url.rstrip("/")
        self.interval = 1.0 / rate
        self.max_requests = min(max_requests, MAX_REQUESTS)  # hard caps, whatever is asked
        self.max_seconds = min(max_seconds, MAX_SECONDS)
        self.random = random.Random(seed)
        self.statuses: Counter[str] = Counter()
        self.sent = 0
        self.slowest_checkout = 0.0  # seconds
        self.stopping = threading.Event()
        self._started = time.monotonic()
        self._next_at = self._started

    def run(self) -> None:
        """Shop until stopped or a bound is reached."""
        last_report = time.monotonic()
        while self._may_continue():
            self.visit()
            if time.monotonic() - last_report >= REPORT_SECONDS:
                print(self.summary(), flush=True)
                last_report = time.monotonic()
        print(self.summary(), flush=True)

    def visit(self) -> None:
        """One customer: browse, fill a cart, check out (or walk away)."""
        products = self.request("GET", "/products")
        if not isinstance(products, list) or not products:
            return
        cart = self.request("POST", "/carts", {})
        if not isinstance(cart, dict):
            return
        path = f"/carts/{cart['id']}"
        big = self.random.random() < 0.1
        for _ in range(self.random.randint(1, 4)):
            product = self.random.choice(products)
            quantity = self.random.randint(5, 20) if big else self.random.randint(1, 3)
            item = {"product_id": product["id"], "quantity": quantity}
            self.request("POST", f"{path}/items", item)
        if self.random.random() < 0.9:
            coupon = self.random.choice(COUPON_CHOICES)
            self.request("POST", f"{path}/checkout", {"coupon": coupon})

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Optional[Any]:
        """Send one request at the configured pace; the decoded answer, or None on failure."""
        if not self._may_continue():
            return None
        self._pace()
        self.sent += 1
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.base_url + path, data, headers, method=method)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self.statuses[str(response.status)] += 1
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            self.statuses[str(exc.code)] += 1
            exc.close()
        except (OSError, ValueError) as exc:
            self.statuses[type(exc).__name__] += 1
            self.stopping.wait(1.0)  # the shop is restarting or gone: do not spin
        finally:
            if path.endswith("/checkout"):
                took = time.monotonic() - started
                self.slowest_checkout = max(self.slowest_checkout, took)
        return None

    def stop(self) -> None:
        self.stopping.set()

    def summary(self) -> str:
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"traffic: {self.sent} requests in {self.elapsed():.0f} s ({counts or 'none'}); "
            f"slowest checkout {self.slowest_checkout:.2f} s"
        )

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _may_continue(self) -> bool:
        return (
            not self.stopping.is_set()
            and self.sent < self.max_requests
            and self.elapsed() < self.max_seconds
        )

    def _pace(self) -> None:
        self._next_at = max(self._next_at + self.interval, time.monotonic())
        self.stopping.wait(max(0.0, self._next_at - time.monotonic()))


def check_loopback(url: str) -> None:
    """Refuse any target but this machine: the generator is for the demo only."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"traffic goes to loopback addresses only, not {host!r}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peephole.demo.traffic", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the shop's address")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="requests per second")
    parser.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        shopper = Shopper(args.url, args.rate, args.max_requests, args.max_seconds, args.seed)
    except ValueError as exc:
        parser.error(str(exc))

    def stop(signum: int, frame: Optional[FrameType]) -> None:
        shopper.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"traffic: {args.rate:g} requests/s to {shopper.base_url}", flush=True)
    shopper.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
