"""The traffic generator stays on loopback and within its bounds."""

from __future__ import annotations

import threading
import time

import pytest

from demo.conftest import ShopClient
from peephole.demo.traffic import (
    MAX_RATE,
    MAX_REQUESTS,
    MAX_SECONDS,
    Shopper,
    check_loopback,
    main,
)
from waiting import wait_until


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost:8000", "http://[::1]:80"])
def test_loopback_addresses_are_allowed(url: str) -> None:
    check_loopback(url)


@pytest.mark.parametrize("url", ["http://10.0.0.1:80", "http://example.com", "http://0.0.0.0:1"])
def test_other_addresses_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Shopper(url)


def test_hard_caps_hold_whatever_is_asked() -> None:
    shopper = Shopper("http://127.0.0.1:1", max_requests=10**12, max_seconds=10**9)
    assert (shopper.max_requests, shopper.max_seconds) == (MAX_REQUESTS, MAX_SECONDS)
    assert MAX_REQUESTS <= 1_000_000 and MAX_SECONDS <= 24 * 3600
    for rate in (0, -1, MAX_RATE * 2):
        with pytest.raises(ValueError, match="rate"):
            Shopper("http://127.0.0.1:1", rate=rate)


def test_the_command_refuses_them_with_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--url", "http://192.168.1.1:8000"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_stops_at_the_request_bound(shop: ShopClient) -> None:
    shopper = Shopper(shop.url, rate=50, max_requests=25, seed=3)
    shopper.run()
    assert shopper.sent == 25
    assert sum(shopper.statuses.values()) == 25
    assert set(shopper.statuses) <= {"200", "201", "400", "500"}
    assert 0 < shopper.slowest_checkout < 5
    assert shopper.summary().startswith("traffic: 25 requests in ")


def test_stops_at_the_time_bound(shop: ShopClient) -> None:
    shopper = Shopper(shop.url, rate=20, max_seconds=0.5, seed=1)
    started = time.monotonic()
    shopper.run()
    assert time.monotonic() - started < 3
    assert 0 < shopper.sent <= 12


def test_keeps_its_pace(shop: ShopClient) -> None:
    shopper = Shopper(shop.url, rate=10, max_requests=10, seed=2)
    started = time.monotonic()
    shopper.run()
    assert time.monotonic() - started >= 0.9


def test_stop_ends_it_promptly_even_when_the_shop_is_gone() -> None:
    shopper = Shopper("http://127.0.0.1:9", rate=2)  # nothing listens on the discard port
    runner = threading.Thread(target=shopper.run)
    runner.start()
    wait_until(lambda: shopper.statuses, 10, "the shopper never tried")
    shopper.stop()
    runner.join(3)
    assert not runner.is_alive()
    assert shopper.statuses and all(not status.isdigit() for status in shopper.statuses)
