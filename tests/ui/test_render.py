"""The UI's server-side pieces without a browser: highlighting, values as text, two hits
compared, the live stream's summaries, safe redirects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from peephole.server.ui import render
from peephole.server.ui.live import sse
from peephole.server.ui.pages import _safe_next, instances_by_service
from peephole.server.ui.probes import ProbeForm, _validation_errors
from peephole.server.ui.source import probes_on

pytestmark = pytest.mark.server


def test_each_highlighted_line_stands_alone_and_is_escaped() -> None:
    text = 'def f():\n    """two\n    lines <b>"""\n    return "<img src=x>\\x07"\n'
    lines = render.highlight_lines(text)
    assert len(lines) == 4
    for line in lines:
        assert line.count("<span") == line.count("</span>")  # no tag spans a line break
    assert "&lt;b&gt;" in lines[2] and "<b>" not in lines[2]
    assert "&lt;img src=x&gt;" in lines[3]


def test_values_name_their_cuts() -> None:
    assert render.one_line({"t": "str", "cut": "redacted"}) == "str \u2039redacted\u203a"
    long = render.one_line({"t": "str", "v": "x" * 10, "len": 5000, "cut": "length"})
    assert long == "'xxxxxxxxxx' \u2039truncated, 5000 chars\u203a"
    assert render.one_line({"t": "list", "len": 3, "items": []}) == "list (3)"


def test_two_hits_compared_mark_what_changed() -> None:
    a = {"n": {"t": "int", "v": 1}, "cart": {"t": "Cart", "fields": {"id": {"t": "int", "v": 7}}}}
    b = {"n": {"t": "int", "v": 2}, "cart": {"t": "Cart", "fields": {"id": {"t": "int", "v": 7}}}}
    rows = {path: changed for path, _, _, changed in render.compare(a, b)}
    assert rows == {"n": True, "cart": False, "cart.id": False}


def test_the_live_stream_sends_summaries_not_snapshots() -> None:
    event = {
        "id": "e1",
        "type": "snapshot",
        "service": "s",
        "probe_id": "p",
        "frames": [{"locals": {"secret": {"t": "str", "v": "x" * 1000}}}],
    }
    line = sse({"type": "event", "event": event})
    assert line.startswith("data: ") and line.endswith("\n\n") and "\n" not in line[:-2]
    body = json.loads(line[len("data: ") :])
    assert body["event"]["id"] == "e1" and "frames" not in body["event"]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil", ""])
def test_sign_in_never_redirects_off_the_site(target: str) -> None:
    assert _safe_next(target) == "/"


def test_sign_in_returns_to_a_local_page() -> None:
    assert _safe_next("/probes?service=shop") == "/probes?service=shop"


def test_an_error_the_form_has_no_field_for_is_shown_at_the_top() -> None:
    form = ProbeForm(kind="breakpoint", file="app.py", line="3")
    with pytest.raises(ValidationError) as refused:
        form.body()
    errors = _validation_errors(refused.value)
    assert list(errors) == ["form"] and errors["form"].message.startswith("kind: ")


def test_a_probe_shows_in_the_gutter_of_its_file_only() -> None:
    probe = {"file": "shop/app.py", "line": 3, "statuses": []}
    assert probes_on([probe], "/srv/shop/app.py") == {3: [probe]}
    assert probes_on([probe], "/srv/myshop/app.py") == {}
    assert probes_on([probe], "/srv/shop/webapp.py") == {}


def test_a_service_restarted_many_times_lists_its_newest_gone_instances() -> None:
    rows = [{"service": "shop", "instance_id": "live", "connected": True}] + [
        {"service": "shop", "instance_id": f"old-{n}", "connected": False} for n in range(12)
    ]
    shown, hidden = instances_by_service(rows)
    assert [i["instance_id"] for i in shown["shop"]] == ["live"] + [f"old-{n}" for n in range(5)]
    assert hidden == {"shop": 7}


def test_a_shared_value_says_where_it_was_shown_as_a_path_not_a_pointer() -> None:
    """Issue 15 item 6 on the web UI: the snapshot page showed
    ``same as /frames/0/locals/lines/items/0``."""
    line = {"t": "shop.CartLine", "fields": {"ref": {"t": "str", "v": "a field named ref"}}}
    event: dict[str, Any] = {
        "frames": [
            {
                "locals": {
                    "lines": {"t": "list", "items": [line]},
                    "line": {"t": "shop.CartLine", "ref": "/frames/0/locals/lines/items/0"},
                }
            }
        ]
    }
    shown = render.with_readable_refs(event)
    local = shown["frames"][0]["locals"]
    assert local["line"]["ref_path"] == "frames[0].locals.lines[0]"
    assert render.one_line(local["line"]) == (
        "shop.CartLine \u2039same as frames[0].locals.lines[0]\u203a"
    )
    assert "ref_path" not in local["lines"]["items"][0]["fields"]  # a field named ref is data
    assert "ref_path" not in event["frames"][0]["locals"]["line"]  # the stored event is unchanged
