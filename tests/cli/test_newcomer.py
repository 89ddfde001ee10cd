"""What a newcomer met on a first try (issue "Every step a newcomer takes works the first
time"): each test here failed before its fix. These need no peephole server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from peephole.cli import render
from peephole.cli.common import console
from peephole.cli.main import explain
from peephole.client import Event, ExceptionGroup, Probe
from peephole.client.errors import InvalidRequest

from .conftest import Cli

GOLDEN = Path(__file__).parent / "golden"


def golden_probe() -> Probe:
    return Probe.from_dict(json.loads((GOLDEN / "probe.json").read_text(encoding="utf-8")))


# --- references in snapshots are readable paths --------------------------------------------


def snapshot_with_ref(ref: str) -> Event:
    items = {"t": "list", "len": 1, "items": [{"t": "int", "v": 7}]}
    return Event.from_dict(
        {
            "id": "e1",
            "type": "snapshot",
            "time": 0,
            "probe_id": "p1",
            "file": "a.py",
            "line": 3,
            "frames": [
                {
                    "file": "a.py",
                    "line": 3,
                    "function": "f",
                    "module": "a",
                    "locals": {
                        "lines": {
                            "t": "list",
                            "len": 3,
                            "items": [{"t": "int", "v": 1}, {"t": "int", "v": 2}, items],
                        },
                        "again": {"t": "list", "ref": ref},
                    },
                }
            ],
            "watches": [
                {
                    "expr": "cart",
                    "value": {
                        "t": "dict",
                        "len": 1,
                        "entries": [[{"t": "str", "v": "k"}, {"t": "list", "ref": ref}]],
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("ref", "readable"),
    [
        ("/frames/0/locals/lines/items/2", "frames[0].locals.lines[2]"),
        ("/watches/0/value/None", "watches[0] (cart)"),
        ("/watches/0/value/entries/0/1", "watches[0] (cart)['k']"),
        ("/frames/0/locals/cart/fields/items", "frames[0].locals.cart.items"),
        ("self.items[0]", "self.items[0]"),
    ],
)
def test_a_reference_is_a_readable_path(
    capsys: pytest.CaptureFixture[str], ref: str, readable: str
) -> None:
    console().print(render.snapshot(snapshot_with_ref(ref)))
    out = capsys.readouterr().out
    assert f"same as {readable}{render.CLOSE}" in out
    assert "None" not in out and "/frames" not in out and "/watches" not in out


# --- COLUMNS is honoured, ids and exception types are never cut ----------------------------


def test_piped_output_honours_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert console().width == 200
    long_path = "services/checkout/src/shop/payments/providers/stripe_gateway.py:1234"
    event = Event.from_dict(
        {
            "id": "0123456789abcdef0123456789abcdef",
            "type": "snapshot",
            "time": 0,
            "service": "checkout",
            "probe_id": "p1",
            "file": long_path.rsplit(":", 1)[0],
            "line": 1234,
        }
    )
    console().print(render.events([event]))
    out = capsys.readouterr().out
    assert event.id in out and "payments/providers" not in out  # the list shortens paths
    assert max(len(line) for line in out.splitlines()) <= 200


def test_exception_types_and_ids_are_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    group = ExceptionGroup.from_dict(
        {
            "fingerprint": "f" * 32,
            "exc_type": "shop.payments.errors.PaymentProviderTimeoutError",
            "message": "the provider did not answer within 30 s " * 4,
            "count": 3,
            "services": ["checkout-service-eu-west-1"],
        }
    )
    console().print(render.exceptions([group]))
    out = capsys.readouterr().out
    assert "shop.payments.errors.PaymentProviderTimeoutError" in out
    assert "f" * 32 in out


def test_probe_ids_and_locations_are_never_wrapped(capsys: pytest.CaptureFixture[str]) -> None:
    probe = golden_probe()
    probe.file = "services/checkout/src/shop/payments/providers/stripe_gateway.py"
    console().print(render.probes([probe]))
    out = capsys.readouterr().out
    assert f"{probe.file}:{probe.line}" in out


# --- captures and hits are named apart ------------------------------------------------------


def test_captures_and_hits_are_named_apart(capsys: pytest.CaptureFixture[str]) -> None:
    probe = golden_probe()
    console().print(render.probes([probe]))
    listing = capsys.readouterr().out
    assert "captures" in listing.splitlines()[0] and "hits" not in listing.splitlines()[0]
    console().print(render.probe(probe))
    shown = capsys.readouterr().out
    assert "captures   3/10" in shown
    assert not any(line.startswith("hits ") for line in shown.splitlines())


# --- range errors name the flags the person typed -------------------------------------------


@pytest.mark.parametrize(
    ("field", "reason", "expected"),
    [
        ("hit_limit", "Input should be less than or equal to 1000", "--hits must be at most 1000"),
        (
            "expire_seconds",
            "Input should be less than or equal to 604800",
            "--expire must be at most 604800 seconds (7d)",
        ),
        ("rate", "Input should be less than or equal to 100000", "--rate must be at most 100000"),
        ("watches.2", "too long", "invalid --watch (the third): too long"),
    ],
)
def test_range_errors_name_the_flag(field: str, reason: str, expected: str) -> None:
    assert explain(InvalidRequest(reason, field)) == expected


# --- a wrong URL says it is not a peephole server -------------------------------------------


@pytest.fixture
def other_http_service() -> Iterator[str]:
    """Some other web service on a loopback port: 404 for everything, in HTML."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize(
    "args", [["probes", "show", "ab12"], ["probes", "list"], ["snapshots", "show", "e1"]]
)
def test_a_wrong_url_says_it_is_not_a_peephole_server(
    cli: Cli, other_http_service: str, args: list[str]
) -> None:
    result = cli("--url", other_http_service, *args)
    assert result.code == 1
    assert "does not answer like a peephole server" in result.err, result.err
    assert "not found" not in result.err


# --- click's oldest supported version ------------------------------------------------------


def test_errors_work_without_click_82s_no_args_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click 8.1 (the declared floor) has no ``NoArgsIsHelpError``."""
    monkeypatch.delattr(click.exceptions, "NoArgsIsHelpError", raising=False)
    result = cli("run")
    assert result.code == 2
    assert result.err.startswith("error: Missing argument 'PROGRAM...'")


def test_source_lists_application_files_first() -> None:
    from peephole.cli.source import application_first

    files = [
        "/venv/lib/python3.12/site-packages/websockets/client.py",
        "/srv/shop/shop/checkout.py",
        "/usr/lib/python3/dist-packages/bytecode/concrete.py",
        "/srv/shop/shop/cart.py",
    ]
    assert application_first(files) == [
        "/srv/shop/shop/cart.py",
        "/srv/shop/shop/checkout.py",
        "/usr/lib/python3/dist-packages/bytecode/concrete.py",
        "/venv/lib/python3.12/site-packages/websockets/client.py",
    ]


def test_an_older_versions_error_is_not_the_probes_error() -> None:
    """After `probes edit` fixed a condition, the previous version's error is history."""
    probe = golden_probe()  # version 2, its instance reported "no code at line 42"
    probe.statuses[0].version = 1
    assert probe.errors() == []
    probe.statuses[0].version = 2
    assert [s.message for s in probe.errors()] == ["no code at line 42"]


def test_an_exception_events_type_is_never_cut(capsys: pytest.CaptureFixture[str]) -> None:
    event = Event.from_dict(
        {
            "id": "e" * 32,
            "type": "exception",
            "time": 0,
            "service": "checkout-service-eu-west-1",
            "exc_type": "shop.payments.errors.PaymentProviderTimeoutError",
            "message": "the provider did not answer within 30 s " * 3,
            "frames": [{"file": "/srv/app/shop/payments/stripe.py", "line": 88}],
        }
    )
    console().print(render.events([event]))
    assert "shop.payments.errors.PaymentProviderTimeoutError" in capsys.readouterr().out


# --- syntax errors: what the server refuses, with a column and a caret ----------------------


@pytest.mark.parametrize(
    "template",
    [
        "{x!r}",
        "{x:.2f}",
        "{d['}']}",
        "{a != b}",
        "{ x }",
        "{ {'a': 1}['a'] }",
        "{(lambda: 1)()}",
        "{x[1:2]}",
        "{{literal}} {len(cart)}",
        '{"""a}b"""}',
        "{x!r:>10}",
    ],
)
def test_templates_the_agent_takes_are_not_refused(template: str) -> None:
    from peephole.protocol import template_problem

    assert template_problem(template) is None


@pytest.mark.parametrize(
    ("template", "first_line", "caret_at"),
    [
        ("total {cart.total", "placeholder at column 7 is not closed with '}'", 7),
        ("total {cart.total +}", "syntax error at column 20: invalid syntax", 20),
        ("a } b", "single '}' at column 3; write '}}' for a brace", 3),
        ("x {}", "empty placeholder at column 3", 3),
    ],
)
def test_a_refused_template_points_at_the_column(
    template: str, first_line: str, caret_at: int
) -> None:
    from peephole.protocol import template_problem

    problem = template_problem(template)
    assert problem is not None
    assert problem.splitlines() == [first_line, f"    {template}", " " * (3 + caret_at) + "^"]


@pytest.mark.parametrize(
    ("condition", "column"),
    [
        ("total >", 8),
        ("  a +* b", 6),
        ("a b", 3),
    ],
)
def test_a_condition_syntax_error_points_at_the_column(condition: str, column: int) -> None:
    from peephole.protocol import expression_problem

    problem = expression_problem(condition)
    assert problem is not None
    assert problem.splitlines()[0].startswith(f"syntax error at column {column}: ")
    assert problem.splitlines()[2] == " " * (3 + column) + "^"
    assert expression_problem("  total > 1  ") is None
