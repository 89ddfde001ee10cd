"""The README's walk through the demo, in the browser: the launcher's server and shop (no
traffic: the test sends the failing checkout itself), signed in with the demo's admin token.
The README's screenshots of the demo come from here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Dialog, expect

from peephole.demo.launcher import free_port, probe_hint

from .conftest import screenshot, sign_in, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.server]


class Demo:
    def __init__(self, url: str, shop: str, token: str) -> None:
        self.url, self.shop, self.token = url, shop, token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.shop + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def failing_checkout(self) -> None:
        """A gift card with the SPRING10 coupon: the shop's intermittent 500."""
        status, cart = self.call("POST", "/carts", {})
        assert status == 201
        for product, quantity in (("gc-402", 1), ("kt-301", 2)):
            added = self.call(
                "POST", f"/carts/{cart['id']}/items", {"product_id": product, "quantity": quantity}
            )
            assert added[0] == 200
        assert self.call("POST", f"/carts/{cart['id']}/checkout", {"coupon": "SPRING10"})[0] == 500


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data = tmp_path_factory.mktemp("demo")
    port, shop_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    log = open(data / "launcher.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
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
            str(data / "state"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:

        def running() -> bool:
            assert process.poll() is None, (data / "launcher.log").read_text()
            return "peephole demo is running" in (data / "launcher.log").read_text()

        wait_for(running, 120, "the demo to start")
        token = json.loads((data / "state" / "credentials.json").read_text())["admin_token"]
        yield Demo(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{shop_port}", token)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_the_readme_walk_through_the_demo(demo: Demo, browser: Any) -> None:
    probe_file, line, condition = probe_hint()
    context = browser.new_context(base_url=demo.url, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        sign_in(page, demo.token)
        expect(page.locator(".service", has_text="shop")).to_contain_text("1 live instance")
        demo.failing_checkout()
        page.goto("/exceptions")
        group = page.locator("#groups tbody tr", has_text="KeyError")
        expect(group.or_(page.locator("#new-groups:not([hidden])"))).to_be_visible()
        if not group.count():  # it arrived after the page was made: the page says so
            page.locator("#new-groups a").click()
        expect(group).to_contain_text("gift-cards")
        screenshot(page, "demo-exceptions")

        page.goto("/services/shop")
        page.fill("input.filter", "checkout")
        page.locator("#files li:visible a", has_text=re.compile(f"{probe_file}$")).click()
        page.locator(f"#L{line} a.nr").click()
        form = page.locator("#probe-form")
        form.locator("input[name=condition]").fill(condition)
        screenshot(page, "demo-add-probe")
        form.locator("#add-probe").click()
        expect(page).to_have_url(re.compile(r"/probes/[0-9a-f]+$"))
        expect(page.locator(".pill").first).to_have_text("active")
        demo.failing_checkout()
        expect(page.locator("#hits li")).to_have_count(1)  # without a reload
        page.locator("#hits li a").first.click()
        tree = page.locator(".tree[data-source=locals]")
        coupon = tree.locator("li.node", has=page.locator(".name", has_text=re.compile("^coupon$")))
        coupon.locator(".toggle").first.click()
        expect(coupon).to_contain_text("SPRING10")
        screenshot(page, "demo-snapshot")
        assert dialogs == []
    finally:
        context.close()
