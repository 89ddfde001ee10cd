"""Captured text reaches every page escaped as the CLI escapes it (``protocol.printable``):
C0 and C1 controls, DEL, and the bidirectional marks and overrides that reorder a line, in
the server's rendering and in tree.js, whose list of characters mirrors protocol's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from peephole import protocol
from peephole.server.ui import render

from .static_page import STATIC, static_page

pytestmark = pytest.mark.server

TREE_JS = STATIC / "tree.js"
HOSTILE = "paid\u202e0001 \x9b2J \u2066x\u2069 \x1b[31m"
SHOWN = "paid\\u202e0001 \\x9b2J \\u2066x\\u2069 \\x1b[31m"


def test_the_server_side_pages_escape_c1_controls_and_bidi_overrides() -> None:
    assert render.event_summary({"message": HOSTILE})["message"] == SHOWN
    (line,) = render.highlight_lines(f"# {HOSTILE}\n")
    assert "\\u202e" in line and "\u202e" not in line and "\x9b" not in line


def _js_ranges() -> set[tuple[int, int]]:
    (line,) = [x for x in TREE_JS.read_text().splitlines() if x.startswith("const CONTROL =")]
    pairs = re.findall(r"\\u([0-9a-fA-F]{4})-\\u([0-9a-fA-F]{4})", line)
    assert line.count("\\u") == 2 * len(pairs), f"write every range as \\uXXXX-\\uXXXX: {line}"
    return {(int(a, 16), int(b, 16)) for a, b in pairs}


def test_tree_js_escapes_the_same_characters_as_protocol_printable() -> None:
    assert _js_ranges() == set(protocol.CONTROL_RANGES)


VALUES = {"note": {"t": "str", "v": HOSTILE}, f"k{HOSTILE}": {"t": "int", "v": 1}}


@pytest.fixture
def tree_page(browser: Browser) -> Iterator[Page]:
    """A page that draws ``VALUES`` with tree.js as the UI serves it, without a server."""
    values = json.dumps(VALUES).replace("<", "\\u003c")
    page = static_page(
        browser,
        f'<script id="values" type="application/json">{values}</script><div id="tree"></div>',
        'import { drawTree } from "./tree.js";\n'
        'const values = JSON.parse(document.getElementById("values").textContent);\n'
        'drawTree(document.getElementById("tree"), values);\n',
    )
    yield page
    page.close()


@pytest.mark.browser
def test_the_variable_tree_shows_a_bidi_override_escaped(tree_page: Page) -> None:
    tree_page.wait_for_selector("#tree li", timeout=10_000)
    text = tree_page.inner_text("#tree")
    assert SHOWN in text
    assert not set(text) & {"\u202e", "\x9b", "\u2066", "\u2069", "\x1b"}
