"""The add form in the browser takes and refuses what the API does: its template preview
finds the same placeholders the server will (a brace inside a string is no end), a refused
condition shows the API's message with a caret, and a leading space is no error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from peephole import protocol

from .conftest import Env, marker_line
from .static_page import static_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.server]

TEMPLATE = 'brace {"}"} total={total:>5} {{literal}}'
BAD_CONDITION = "  total +* 1"


def test_the_form_checks_as_the_api_does(open_browser: Any, env: Env) -> None:
    page = open_browser("debugger").page
    line = marker_line(env.target.path, "# @probe")
    query = httpx.QueryParams({"path": str(env.target.path), "line": line})
    page.goto(f"/services/{env.target.service}/source?{query}")
    form = page.locator("#probe-form")
    form.locator("input[value=logpoint]").check()
    form.locator("input[name=template]").fill(TEMPLATE)
    expect(page.locator("#template-preview .placeholder")).to_have_text(['"}"', "total:>5"])
    expect(page.locator("#template-preview .bad")).to_have_count(0)

    form.locator("input[name=condition]").fill(BAD_CONDITION)
    form.locator("#add-probe").click()
    refused = page.locator(".field-error[data-field=condition]")
    problem = protocol.expression_problem(BAD_CONDITION)
    assert problem is not None
    reason, _, caret = problem.splitlines()
    expect(refused).to_contain_text(reason)
    pointer = refused.locator("pre.pointer").inner_text().splitlines()
    assert pointer == [BAD_CONDITION, caret[4:]]  # the API's caret, under the same character

    page.locator("#probe-form input[name=condition]").fill(" total > 1")
    page.locator("#probe-form #add-probe").click()
    page.wait_for_url(lambda url: "/probes/" in url and "/new" not in url)
    probe_id = page.url.rsplit("/", 1)[1]
    headers = {"Authorization": f"Bearer {env.tokens['admin']}"}
    probe = httpx.get(f"{env.server.url}/api/v1/probes/{probe_id}", headers=headers).json()
    assert probe["template"] == TEMPLATE and probe["condition"] == "total > 1"
    httpx.delete(f"{env.server.url}/api/v1/probes/{probe_id}", headers=headers)


PREVIEWED = [
    "total={total} note={note} {{braces}} {n",
    'brace {"}"} and {d["{"]!r}',
    "{ {'a': 1}['a'] } {x!r:>5} {a != b}",
    "{'''}'''} {f(')')} {[1, {2}][0]:^3}",
    "{'\\'}'} {x:>10} } {",
]


def _server_placeholders(template: str) -> list[dict[str, Any]]:
    """The placeholders the server's checker reads, in the preview's shape."""
    found: list[dict[str, Any]] = []
    index = 0
    while index < len(template):
        if template.startswith(("{{", "}}"), index):
            index += 2
        elif template[index] != "{":
            index += 1
        else:
            end, _ = protocol._placeholder_end(template, index + 1)
            found.append(
                {"text": template[index + 1 : end if end >= 0 else None], "closed": end >= 0}
            )
            if end < 0:
                break
            index = end + 1
    return found


def test_the_template_preview_finds_the_placeholders_the_server_reads(browser: Browser) -> None:
    page = static_page(
        browser, "", 'import { placeholders } from "./app.js"; window.placeholders = placeholders;'
    )
    page.wait_for_function("window.placeholders !== undefined", timeout=10_000)
    for template in PREVIEWED:
        shown = page.evaluate("(t) => window.placeholders(t)", template)
        assert shown == _server_placeholders(template), template
    page.close()
