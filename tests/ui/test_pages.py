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

from e2e.server_process import ProtocolPeer
from peephole import protocol

from .conftest import Env, marker_line, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.server]

XSS_VALUE = "<img src=x onerror=alert(1)>"
XSS_KEY = "</script><script>alert(2)</script>"


def api(env: Env) -> httpx.Client:
    return httpx.Client(
        base_url=f"{env.server.url}/api/v1",
        timeout=10,
        headers={"Authorization": f"Bearer {env.tokens['admin']}"},
    )


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
    open_browser: Any,
) -> None:
    page = open_browser("debugger").page
    page.goto("/services/nowhere")
    expect(page.locator("#no-source")).to_contain_text("no connected agent")
    page.fill(".by-line input[name=file]", "app/main.py")
    page.fill(".by-line input[name=line]", "12")
    page.click(".by-line button")
    expect(page.locator("#probe-form input[name=file]")).to_have_value("app/main.py")


def test_a_tracepoint_from_a_click_on_a_line_to_snapshots_compared(
    open_browser: Any, env: Env
) -> None:
    watched = open_browser("debugger")
    page = watched.page
    line = marker_line(env.target.path, "# @probe")
    page.goto(source_url(env))
    row = page.locator(f"#L{line}")
    expect(row).to_have_class(re.compile("probeable"))
    expect(page.locator("#source .tok, #source span.k").first).to_be_visible()  # highlighted
    screenshot(page, "source")
    row.locator("a.nr").click()
    form = page.locator("#probe-form")
    expect(form.locator("input[name=line]")).to_have_value(str(line))
    form.locator("input[name=condition]").fill("n >= 1 and (")
    form.locator("#add-probe").click()
    error = page.locator(".field-error[data-field=condition]")
    expect(error).to_contain_text("syntax error at column 12: ")  # the API's own message
    pointer = error.locator("pre.pointer").inner_text().splitlines()
    assert pointer[0] == "n >= 1 and (" and pointer[1] == " " * 11 + "^"  # at the "("
    form = page.locator("#probe-form")
    form.locator("input[name=condition]").fill("n >= 1")
    form.locator("textarea[name=watches]").fill("n * 10")
    form.locator("input[name=hit_limit]").fill("5")
    screenshot(page, "add-probe")
    form.locator("#add-probe").click()
    expect(page).to_have_url(re.compile(r"/probes/[0-9a-f]+$"))
    probe_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(f"[data-state='{probe_id}']").first).to_have_text("active")
    expect(page.locator("table.statuses tbody tr.active")).to_have_count(1)  # per instance

    for n in (1, 2):  # snapshots arrive on the open page, without a reload
        assert env.target.hit("/", n) == 200
        expect(page.locator("#hits li")).to_have_count(n)
    expect(page.locator(f"[data-captures='{probe_id}']")).to_contain_text("2 / 5")
    screenshot(page, "probe")

    page.locator("#hits li a").first.click()  # the newest hit (n=2)
    expect(page.locator(".stack li.current")).to_contain_text("checkout")
    expect(page.locator(".excerpt .ln.selected")).to_contain_text("return total")
    tree = page.locator(".tree[data-source=locals]")
    cart = tree.locator("li.node", has=page.locator(".name", has_text=re.compile("^cart$")))
    cart.locator(".toggle").first.click()
    items = cart.locator("li.node", has=page.locator(".name", has_text=re.compile("^items$")))
    items.locator(".toggle").first.click()
    first = items.locator("li.node", has=page.locator(".name", has_text="[0]")).first
    first.locator(".toggle").first.click()
    expect(first).to_contain_text('["sku"] = "sku-0"')
    expect(first).to_contain_text('["qty"] = 2')  # n of the newest hit
    expect(tree).to_contain_text("\u2039redacted\u203a")  # password, cut and said so
    note = tree.locator("li.node", has=page.locator(".name", has_text=re.compile("^note$")))
    expect(note.locator(".value")).to_have_text(json.dumps(XSS_VALUE))
    odd = tree.locator("li.node", has=page.locator(".name", has_text=re.compile("^odd$")))
    odd.locator(".toggle").first.click()
    expect(odd.locator(".children .name")).to_have_text(f"[{json.dumps(XSS_KEY)}]")
    assert (
        page.locator(".tree img").count() == 0
        and page.locator("main script:not([type])").count() == 0
    )
    expect(page.locator(".tree[data-source=watches]")).to_contain_text("n * 10 = 20")
    cart.locator(".copy").first.click()
    copied = json.loads(cart.locator(".copy").first.get_attribute("data-copied") or "")
    assert copied["__type__"].endswith("Cart") and copied["items"][0]["qty"] == 2
    screenshot(page, "snapshot")

    page.click("#prev-hit")
    expect(page.locator("#next-hit")).to_be_visible()
    page.click("#next-hit")
    page.click("#compare-prev")
    changed = page.locator("#compare tr.changed")
    expect(changed.filter(has_text="cart.items[0]['qty']").first).to_contain_text("2")
    expect(page.locator("#compare tr:not(.changed)", has_text="note")).to_have_count(1)
    screenshot(page, "compare")


def test_a_logpoint_streams_into_live_logs_with_filter_and_pause(
    open_browser: Any, env: Env
) -> None:
    page = open_browser("debugger").page
    line = marker_line(env.target.path, "# @probe")
    page.goto(source_url(env, line))  # a permalink to the line opens the form
    form = page.locator("#probe-form")
    form.locator("input[value=logpoint]").check()
    template = form.locator("input[name=template]")
    template.fill("total={total} note={note} {{braces}} {n")
    expect(page.locator("#template-preview .placeholder")).to_have_text(
        ["total", "note", "n (no closing brace)"]
    )
    form.locator("#add-probe").click()
    expect(page.locator(".field-error[data-field=template]")).to_contain_text("{n")
    form = page.locator("#probe-form")
    form.locator("input[name=template]").fill("total={total} note={note}")
    form.locator("#add-probe").click()
    expect(page).to_have_url(re.compile(r"/probes/[0-9a-f]+$"))
    probe_id = page.url.rsplit("/", 1)[1]

    page.goto(f"/logs?service={env.target.service}&probe_id={probe_id}")
    expect(page.locator("body.live")).to_have_count(1)
    env.target.hit("/", 5)
    logs = page.locator("#logs li")
    expect(logs.first).to_contain_text(f"total=18 note={XSS_VALUE}")
    page.click("#pause")
    env.target.hit("/", 6)
    expect(page.locator("#paused-count")).to_have_text("1 new while paused")
    expect(logs).to_have_count(1)
    page.click("#pause")  # resume: what arrived meanwhile shows
    expect(logs).to_have_count(2)
    expect(logs.first).to_contain_text("total=21")
    page.fill("#log-text", "total=18")
    expect(page.locator("#logs li:visible")).to_have_count(1)
    assert page.locator("#logs img").count() == 0
    screenshot(page, "live-logs")
    with api(env) as client:
        client.delete(f"/probes/{probe_id}")


def test_exception_groups_count_live_and_open_to_the_newest_snapshot(
    open_browser: Any, env: Env
) -> None:
    page = open_browser("viewer").page
    assert env.target.hit("/boom", 7) == 500
    with api(env) as client:
        wait_for(lambda: client.get("/exceptions").json(), what="an exception group")
    page.goto(f"/exceptions?service={env.target.service}")
    row = page.locator("#groups tbody tr", has_text="ValueError")
    expect(row).to_contain_text("<script>alert(3)</script>")
    count = int(row.locator(".count").inner_text())
    assert env.target.hit("/boom", 8) == 500
    expect(row.locator(".count")).to_have_text(str(count + 1))  # without a reload
    screenshot(page, "exceptions")
    row.get_by_role("link").click()
    expect(page.locator(".chart rect")).to_have_count(24)
    frame = page.locator(".stack li", has_text="fail")
    order = frame.locator("li.node", has=page.locator(".name", has_text=re.compile("^order$")))
    order.locator(".toggle").first.click()
    expect(order).to_contain_text('["state"] = "<b>lost</b>"')
    expect(page.locator("h1")).to_have_text("ValueError")
    assert page.locator("main b, main script:not([type])").count() == 0
    screenshot(page, "exception-group")


def test_a_viewer_sees_no_controls_and_the_server_refuses_changes(
    open_browser: Any, env: Env
) -> None:
    with api(env) as client:
        probe = client.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": str(env.target.path),
                "line": 3,
                "target": {"service": env.target.service},
            },
        ).json()
    watched = open_browser("viewer")
    page = watched.page
    page.goto("/probes")
    expect(page.locator(f"tr[data-probe='{probe['id']}']")).to_be_visible()
    expect(page.locator("button[data-action]")).to_have_count(0)
    page.goto(source_url(env))
    page.locator("#L3 a.nr").click()  # a plain link for a viewer: no form opens
    expect(page.locator("#probe-form")).to_have_count(0)
    expect(page.locator(".panel .hint")).to_contain_text("viewer")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(f"/probes/{probe['id']}/delete", form={"csrf": csrf or ""})
    assert refused.status == 403
    refused = page.request.post(
        "/probes/new", form={"csrf": csrf or "", "kind": "tracepoint", "file": "x.py", "line": "1"}
    )
    assert refused.status == 403
    assert page.request.get("/admin").status == 403

    debugger = open_browser("debugger").page  # a forged form without the CSRF token
    forged = debugger.request.post(f"/probes/{probe['id']}/delete", form={"csrf": "forged"})
    assert forged.status == 403
    debugger.goto(f"/probes/{probe['id']}")
    debugger.click("button[data-action=disable]")
    expect(debugger.locator(f"[data-state='{probe['id']}']").first).to_have_text("disabled")
    debugger.click("button[data-action=delete]")
    expect(debugger).to_have_url(re.compile(r"/probes$"))
    expect(debugger.locator(f"tr[data-probe='{probe['id']}']")).to_have_count(0)


def test_keyboard_moves_filters_opens_and_closes(open_browser: Any, env: Env) -> None:
    page = open_browser("debugger").page
    page.goto(f"/services/{env.target.service}")
    page.keyboard.press("/")
    expect(page.locator("input.filter")).to_be_focused()
    page.keyboard.type("target_app")
    expect(page.locator("#files li:visible")).to_have_count(1)
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    expect(page.locator("#files li.cursor")).to_contain_text("target_app.py")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/source\?path="))
    page.locator("#L3 a.nr").click()
    expect(page.locator("#probe-form")).to_be_visible()
    page.keyboard.press("Escape")  # the focus is in the form: the first Esc leaves it
    page.keyboard.press("Escape")
    expect(page.locator("#probe-form")).to_have_count(0)


def test_admins_make_tokens_edit_probes_and_read_the_audit_log(open_browser: Any, env: Env) -> None:
    page = open_browser("admin").page
    line = marker_line(env.target.path, "# @probe")
    with api(env) as client:
        probe = client.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": str(env.target.path),
                "line": line,
                "condition": "n > 100",
                "target": {"service": env.target.service},
            },
        ).json()
        wait_for(
            lambda: client.get(f"/probes/{probe['id']}").json()["state"] == "active",
            what="the probe to be active",
        )
    page.goto(f"/probes?service={env.target.service}&state=active")
    expect(page.locator(f"tr[data-probe='{probe['id']}']")).to_contain_text("if n > 100")
    page.goto(f"/probes/{probe['id']}")
    page.locator("details.edit summary").click()
    page.fill("details.edit input[name=condition]", "n > 200")
    page.click("details.edit button[type=submit]")
    expect(page.locator("dl.facts")).to_contain_text("n > 200")
    expect(page.locator("dl.facts")).to_contain_text("2, by admin")  # a new version
    page.goto("/admin")
    page.fill("form[action='/admin/tokens'] input[name=name]", "on-call")
    page.select_option("form[action='/admin/tokens'] select[name=role]", "debugger")
    page.click("form[action='/admin/tokens'] button")
    token = page.locator("#created code").inner_text()
    assert token.startswith("pht_")
    expect(page.locator("table").first).to_contain_text("on-call")
    expect(page.locator(".audit")).to_contain_text("probe.update")
    screenshot(page, "admin")
    with api(env) as client:
        client.delete(f"/probes/{probe['id']}")


def test_a_snapshot_of_ten_thousand_values_draws_only_what_is_opened(
    open_browser: Any, env: Env
) -> None:
    with api(env) as client, ProtocolPeer(env.server.url, "big-snapshots") as peer:
        probe = client.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": "app.py",
                "line": 3,
                "target": {"service": "big-snapshots"},
            },
        ).json()
        wait_for(lambda: peer.probes, what="the probe to reach the agent")
        rows = {
            f"rows_{n}": {
                "t": "list",
                "len": 100,
                "items": [
                    {
                        "t": "dict",
                        "len": 1,
                        "entries": [[{"t": "str", "v": "id"}, {"t": "int", "v": i}]],
                    }
                    for i in range(100)
                ],
            }
            for n in range(100)
        }
        event = protocol.new_event(
            protocol.SNAPSHOT,
            probe_id=probe["id"],
            file="app.py",
            line=3,
            frames=[{"file": "app.py", "line": 3, "function": "handler", "locals": rows}],
        )
        peer.send_events(event)
        wait_for(
            lambda: client.get(f"/events?probe_id={probe['id']}").json()["events"],
            what="the snapshot to be stored",
        )
    page = open_browser("viewer").page
    page.goto(f"/events/{event['id']}")
    tree = page.locator(".tree[data-source=locals]")
    expect(tree.locator("li.node")).to_have_count(100)  # 10,100 values, 100 drawn
    branch = tree.locator("li.node", has=page.locator(".name", has_text=re.compile("^rows_7$")))
    branch.locator(".toggle").first.click()
    expect(tree.locator("li.node")).to_have_count(200)
    expect(branch.locator(".children > li").nth(42)).to_contain_text("[42] = dict (1)")


def test_the_theme_follows_the_browser(browser: Any, env: Env) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(base_url=env.server.url, color_scheme=scheme)
        page = context.new_page()
        page.goto("/login")
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert colours == {"light": "rgb(255, 255, 255)", "dark": "rgb(15, 18, 22)"}


def test_a_revoked_token_sends_its_open_page_to_sign_in(open_browser: Any, env: Env) -> None:
    with api(env) as client:
        made = client.post("/tokens", json={"name": "ui-revoked", "role": "viewer"}).json()
        token_id = next(t["id"] for t in client.get("/tokens").json() if t["name"] == "ui-revoked")
        watched = open_browser(None)
        page = watched.page
        page.goto("/login")
        page.fill("input[name=token]", made["token"])
        page.click("button[type=submit]")
        page.goto("/logs")
        expect(page.locator("body.live")).to_have_count(1)
        assert client.post(f"/tokens/{token_id}/revoke").status_code == 200
    expect(page).to_have_url(re.compile(r"/login"))
