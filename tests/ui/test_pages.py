"""The web UI in a real Chromium against a real server and a real service under the agent:
sign in and out, services, the source browser, adding probes, snapshots arriving live,
the variable tree, comparing hits, live logs, exceptions, roles, keyboard and XSS."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import Env, marker_line, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.server]

XSS_VALUE = "<img src=x onerror=alert(1)>"
XSS_KEY = "</script><script>alert(2)</script>"


def api(env: Env) -> httpx.Client:
    return httpx.Client(base_url=f"{env.server.url}/api/v1", timeout=10,
                        headers={"Authorization": f"Bearer {env.tokens['admin']}"})


def source_url(env: Env, line: int | None = None) -> str:
    query = httpx.QueryParams({"path": str(env.target.path), **({"line": line} if line else {})})
    return f"/services/{env.target.service}/source?{query}"


def test_sign_in_rejects_a_bad_token_and_sets_a_strict_http_only_cookie(
    open_browser: Any, env: Env
) -> None:
    watched = open_browser(None)
    page = watched.page
    page.goto("/probes")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("input[name=token]", "not-a-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("unknown or revoked token")
    screenshot(page, "sign-in")
    page.fill("input[name=token]", env.tokens["viewer"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/probes$"))  # back where the person was going
    cookie = next(c for c in watched.context.cookies() if c["name"] == "peephole_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    headers = page.request.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    page.click("#sign-out")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_services_show_live_instances(open_browser: Any, env: Env) -> None:
    page = open_browser("debugger").page
    page.goto("/")
    card = page.locator(".service", has_text=env.target.service)
    expect(card).to_contain_text("1 live instance")
    expect(card.locator("tr.live")).to_contain_text("1.2.3")
    expect(card.locator("tr.live")).to_contain_text("connected")
    screenshot(page, "services")
    card.get_by_role("link", name=env.target.service).click()
    expect(page.locator("#files")).to_contain_text("target_app.py")


def test_a_service_without_a_live_agent_still_takes_a_probe_by_file_and_line(
    open_browser: Any
) -> None:
    page = open_browser("debugger").page
    page.goto("/services/nowhere")
    expect(page.locator("#no-source")).to_contain_text("no connected agent")
    page.fill(".by-line input[name=file]", "app/main.py")
    page.fill(".by-line input[name=line]", "12")
    page.click(".by-line button")
    expect(page.locator("#probe-form input[name=file]")).to_have_value("app/main.py")
