"""Browser tests of the web UI: a real ``peephole server`` process, a real service under the
agent (``target_app.py`` started with ``peephole run``), and Debian's Chromium driven by
Playwright. The browser is required, never skipped: ``python3 dev.py test`` installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from e2e.server_process import ADMIN_TOKEN, AGENT_KEY, ServerProcess
from waiting import wait_until

CHROMIUM = os.environ.get("PEEPHOLE_CHROMIUM", "/usr/bin/chromium")
HERE = Path(__file__).parent
TARGET = HERE / "target_app.py"
SCREENSHOTS = HERE.parent.parent / "docs" / "screenshots"
expect.set_options(timeout=15_000)  # events cross an agent's delivery batch, then the server


def marker_line(path: Path, marker: str) -> int:
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if marker in text:
            return number
    raise AssertionError(f"no {marker} in {path}")


def wait_for(check: Any, seconds: float = 20.0, what: str = "condition") -> Any:
    """:func:`waiting.wait_until` with the browser tests' longer default."""
    return wait_until(check, seconds, f"timed out waiting for {what}", interval=0.1)


@dataclass
class Target:
    """The service under the agent: its name, its HTTP address, and a way to call it."""

    service: str
    url: str
    path: Path

    def hit(self, route: str = "/", n: int = 1) -> int:
        return httpx.get(f"{self.url}{route}?n={n}", timeout=10).status_code


@dataclass
class Env:
    server: ServerProcess
    target: Target
    tokens: dict[str, str]  # role -> token


def _api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1",
        timeout=10,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )


@pytest.fixture(scope="package")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("ui")
    (root / "data").mkdir()
    server = ServerProcess(root / "data").start()
    workdir = root / "app"
    workdir.mkdir()
    shutil.copy(TARGET, workdir / "target_app.py")
    service = f"shop-{uuid.uuid4().hex[:6]}"
    log = open(workdir / "app.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peephole.cli.main",
            "run",
            "--service",
            service,
            "--env",
            "test",
            "--version",
            "1.2.3",
            "--server",
            server.url,
            "--key",
            AGENT_KEY,
            "--",
            sys.executable,
            "target_app.py",
        ],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        # every exception a snapshot (not one per 10 min), so counts change while watched
        env={**os.environ, "PEEPHOLE_EXCEPTION_INTERVAL": "0.2"},
    )
    try:
        with _api(server) as api:

            def connected() -> bool:
                assert process.poll() is None, (workdir / "app.log").read_text()
                return any(i["connected"] for i in api.get(f"/instances?service={service}").json())

            wait_for(connected, 30, "the agent to connect")
            port = wait_for(
                lambda: (workdir / "port.txt").exists() and (workdir / "port.txt").read_text(),
                10,
                "the target's port",
            )
            tokens = {"admin": ADMIN_TOKEN}
            for role in ("debugger", "viewer"):
                made = api.post("/tokens", json={"name": f"ui-{role}", "role": role})
                assert made.status_code == 201, made.text
                tokens[role] = made.json()["token"]
        yield Env(
            server, Target(service, f"http://127.0.0.1:{port}", workdir / "target_app.py"), tokens
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        server.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (python3 dev.py test does)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


class Watched:
    """A page whose dialogs (an ``alert`` means injected script ran) and CSP violations
    are recorded, so every test can check that none happened."""

    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.page: Page = context.new_page()
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(message.text)


@pytest.fixture
def open_browser(browser: Browser, env: Env) -> Iterator[Any]:
    """``open_browser(role)``: a fresh browser context signed in with that role's token."""
    opened: list[Watched] = []

    def open_as(role: str | None = "debugger") -> Watched:
        context = browser.new_context(
            base_url=env.server.url, viewport={"width": 1400, "height": 900}
        )
        context.set_default_timeout(15_000)
        watched = Watched(context)
        opened.append(watched)
        if role is not None:
            sign_in(watched.page, env.tokens[role])
        return watched

    yield open_as
    for watched in opened:
        assert watched.dialogs == [], f"a dialog opened: injected script ran: {watched.dialogs}"
        assert watched.problems == [], f"errors in the page: {watched.problems}"
        watched.context.close()


def sign_in(page: Page, token: str) -> None:
    page.goto("/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page: Page, name: str) -> None:
    """The screenshots in the docs are made here, from the real pages, when
    ``PEEPHOLE_SCREENSHOTS=1`` (otherwise every test run would change the committed images:
    their times and temporary paths differ each time)."""
    if os.environ.get("PEEPHOLE_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
