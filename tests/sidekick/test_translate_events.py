"""Sidekick events -> peephole events: values converted, lines and times fixed, redacted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from peephole import messages, protocol
from peephole.agent.safe.redaction import MASK, Redactor
from peephole.server.sidekick import events, values
from sidekick.fixture_frames import frames, runtime_of

REDACTOR = Redactor()
SNAPSHOTS = frames("agent", "TracePointSnapshotEvent")
LOGS = frames("agent", "LogPointEvent")
ERRORS = frames("agent", "ErrorStackSnapshotEvent")


def spec(kind: str = "tracepoint", **fields: Any) -> protocol.ProbeSpec:
    values: dict[str, Any] = {"id": "p1", "kind": kind, "file": "shop.py", "line": 13}
    values.update(fields)
    if kind == "logpoint":
        values.setdefault("template", "x={x}")
    return protocol.ProbeSpec.from_dict(values)


def valid(event: dict[str, Any]) -> dict[str, Any]:
    """The event passes the checks the gateway gives a peephole agent's events."""
    messages.agent_message({"type": "events", "seq": 0, "events": [event]})
    return event


def test_recorded_events_of_every_kind_are_here() -> None:
    for found in (SNAPSHOTS, LOGS, ERRORS):
        assert {runtime_of(name) for name, _ in found} >= {"node", "python"}


@pytest.mark.parametrize("fixture, frame", SNAPSHOTS, ids=[n for n, _ in SNAPSHOTS])
def test_every_recorded_snapshot_translates(fixture: str, frame: dict[str, Any]) -> None:
    event = valid(events.snapshot(frame, spec(), runtime_of(fixture), REDACTOR))
    assert event["type"] == "snapshot" and event["probe_id"] == "p1"
    assert event["time"] == pytest.approx(frame["time"] / 1000)
    assert len(event["frames"]) == len(frame["frames"])
    top = event["frames"][0]
    assert top["line"] == frame["lineNo"]  # the probe's line, 1-based, on both runtimes
    assert top["function"] == frame["methodName"]
    assert set(top["locals"]) == set(frame["frames"][0]["variables"])


def test_node_caller_lines_become_one_based() -> None:
    frame = next(f for n, f in SNAPSHOTS if runtime_of(n) == "node")
    event = events.snapshot(frame, spec(), "node", REDACTOR)
    assert [f["line"] for f in event["frames"][1:]] == [
        f["lineNo"] + 1 for f in frame["frames"][1:]
    ]
    python = next(f for n, f in SNAPSHOTS if runtime_of(n) == "python")
    event = events.snapshot(python, spec(), "python", REDACTOR)
    assert [f["line"] for f in event["frames"]] == [f["lineNo"] for f in python["frames"]]


def test_node_0_0_19_top_frame_is_zero_based_too() -> None:
    frame = {"lineNo": 18, "frames": [{"lineNo": 17, "className": "/app.js"}, {"lineNo": 27}]}
    assert [f["line"] for f in events.frames(frame, "node", REDACTOR)] == [18, 28]


def test_values_of_both_runtimes() -> None:
    python = next(f for n, f in SNAPSHOTS if n.startswith("python-"))  # recorded
    local = events.snapshot(python, spec(), "python", REDACTOR)["frames"][0]["locals"]
    cart = local["cart"]
    assert cart["t"] == "dict" and cart["len"] == 2
    assert cart["entries"][0] == [{"t": "str", "v": "id"}, {"t": "str", "v": "c1"}]
    assert local["user"]["t"] == "User"
    assert local["user"]["fields"]["vip"] == {"t": "bool", "v": True}
    node = next(f for n, f in SNAPSHOTS if n.startswith("node-"))
    local = events.snapshot(node, spec(), "node", REDACTOR)["frames"][0]["locals"]
    assert local["cart"]["fields"]["id"] == {"t": "str", "v": "c1"}  # Node's string -> str
    assert local["cart"]["fields"]["items"]["len"] == 1
    assert local["total"] == {"t": "number", "v": 15}


@pytest.mark.parametrize(
    "node, shown",
    [
        ({"@type": "undefined"}, {"t": "undefined", "v": None}),
        ({"@type": "Object", "@value": "..."}, {"t": "Object", "cut": "depth"}),
        ({"@type": "String", "@value": "..."}, {"t": "str", "v": "..."}),
        ({"@type": "Foo", "@ignored": True}, {"t": "Foo", "cut": "unsupported"}),
        ({"@type": "Foo", "@data-redacted": True}, {"t": "Foo", "cut": "redacted"}),
        ("...", {"t": "?", "cut": "depth"}),
        ({"@type": "HashMap", "@map": True, "@value": {"k": {"@type": "int", "@value": 1}}},
         {"t": "HashMap", "len": 1, "entries": [[{"t": "str", "v": "k"}, {"t": "int", "v": 1}]]}),
    ],
)  # fmt: skip
def test_value_shapes(node: Any, shown: dict[str, Any]) -> None:
    assert values.value(node, REDACTOR) == shown


def test_secrets_are_redacted_on_arrival() -> None:
    tree = {
        "password": {"@type": "String", "@value": "hunter2"},
        "user": {"@type": "User", "@value": {"api_key": {"@type": "str", "@value": "abc"}}},
        "note": {"@type": "str", "@value": "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
        "card": {"@type": "str", "@value": "4111 1111 1111 1111"},
        "pin": {"@type": "int", "@value": 1234},
        "count": {"@type": "int", "@value": 1234},
        "token_ok": {"@type": "bool", "@value": True},
    }
    shown = values.variables(tree, REDACTOR)
    assert shown["password"] == {"t": "str", "cut": "redacted"}
    assert shown["user"]["fields"]["api_key"] == {"t": "str", "cut": "redacted"}
    assert shown["note"]["cut"] == "redacted" and "ghp_" not in shown["note"]["v"]
    assert "4111" not in shown["card"]["v"]
    assert shown["pin"] == {"t": "int", "cut": "redacted"}
    assert shown["count"] == {"t": "int", "v": 1234}
    assert shown["token_ok"] == {"t": "bool", "v": True}
    policy = Redactor(extra_names=["customer"])
    assert values.value({"@type": "str", "@value": "x"}, policy, "customer")["cut"] == "redacted"


def test_a_too_deep_tree_is_cut() -> None:
    node: dict[str, Any] = {"@type": "int", "@value": 1}
    for _ in range(200):
        node = {"@type": "list", "@value": [node]}
    shown = values.value(node, REDACTOR)
    for _ in range(protocol.Limits().max_depth):
        shown = shown["items"][0]
    assert shown == {"t": "list", "cut": "depth"}


@pytest.mark.parametrize("fixture, frame", LOGS, ids=[n for n, _ in LOGS])
def test_every_recorded_log_line_translates(fixture: str, frame: dict[str, Any]) -> None:
    event = valid(events.log(frame, spec("logpoint", level="warning"), REDACTOR))
    assert event["message"] == frame["logMessage"] and event["level"] == "warning"
    assert event["probe_id"] == "p1" and event["line"] == 13


def test_log_lines_are_masked() -> None:
    frame = {"logMessage": "login password=hunter2 ok", "time": 1796298257095}
    event = events.log(frame, spec("logpoint"), REDACTOR)
    assert "hunter2" not in event["message"] and MASK in event["message"]


@pytest.mark.parametrize("fixture, frame", ERRORS, ids=[n for n, _ in ERRORS])
def test_every_recorded_error_stack_translates(fixture: str, frame: dict[str, Any]) -> None:
    event = valid(events.exception(frame, runtime_of(fixture), REDACTOR))
    assert event["type"] == "exception" and event["frames"] and event["frames"][0]["app"]
    assert not event["exc_type"].startswith("<class")  # Python's "<class 'ValueError'>"
    assert event["message"] == REDACTOR.mask(frame["error"]["message"])
    assert event["fingerprint"]


def test_python_exception_names_and_masked_messages() -> None:
    frame = {
        "error": {"name": "<class 'ValueError'>", "message": "bad password=hunter2"},
        "fileName": "/srv/py_app/shop.py",
        "lineNo": 17,
        "methodName": "fail",
        "frames": [],
        "time": 1796298366190,
    }
    event = events.exception(frame, "python", REDACTOR)
    assert event["exc_type"] == "ValueError" and "hunter2" not in event["message"]
    assert event["frames"][0]["file"] == "/srv/py_app/shop.py"
    assert event["frames"][0]["line"] == 17


def test_node_0_0_8_prefixed_probe_ids_and_trace_ids() -> None:
    assert events.probe_id({"tracePointId": "Tracepoint:/app.js::11::c"}) == "/app.js::11::c"
    assert events.probe_id({"logPointId": "Logpoint:x"}) == "x"
    assert events.probe_id({}) is None
    frame = {"traceId": "abc", "spanId": "def", "time": 1000, "frames": []}
    event = events.snapshot(frame, spec(), "node", REDACTOR)
    assert event["trace_id"] == "abc" and event["span_id"] == "def" and event["time"] == 1.0


def count_nodes(shown: Any) -> int:
    """Value nodes in a converted value (dicts with a ``t``)."""
    if isinstance(shown, dict):
        own = 1 if "t" in shown else 0
        return own + sum(count_nodes(item) for item in shown.values())
    if isinstance(shown, list):
        return sum(count_nodes(item) for item in shown)
    return 0


def test_huge_values_are_cut_to_the_capture_limits() -> None:
    limits = protocol.Limits()
    ints = [{"@type": "int", "@value": n} for n in range(200_000)]
    text = {"@type": "str", "@value": "x" * 100_000}
    wide = {f"f{n}": {"@type": "int", "@value": n} for n in range(5000)}
    tree = {
        "big": {"@type": "list", "@value": ints},
        "text": text,
        "obj": {"@type": "Thing", "@value": wide},
        "map": {"@type": "dict", "@value": wide},
    }
    shown = values.variables(tree, REDACTOR)
    big = shown["big"]
    assert big["len"] == 200_000 and len(big["items"]) == limits.max_items
    assert big["cut"] == "items" and big["omitted"] == 200_000 - limits.max_items
    assert shown["text"]["cut"] == "length" and len(shown["text"]["v"]) == limits.max_string
    assert shown["text"]["len"] == 100_000
    assert len(shown["obj"]["fields"]) == limits.max_fields and shown["obj"]["cut"] == "items"
    assert len(shown["map"]["entries"]) == limits.max_items and shown["map"]["cut"] == "items"


def test_a_frame_converts_within_a_node_budget() -> None:
    row = {"@type": "list", "@value": [{"@type": "int", "@value": 1}] * 100}
    table = {"@type": "list", "@value": [row] * 100}
    tree = {f"v{n}": table for n in range(20)}  # 200,000 leaves
    shown = values.variables(tree, REDACTOR)
    # past the budget, only the open containers' remaining items become stubs
    assert count_nodes(shown) <= values.MAX_NODES + 2 * protocol.Limits().max_items + len(tree)
    assert shown["v19"] == {"t": "list", "cut": "budget"}


SECRET = "hunter2-s3cr3t-value"


@pytest.mark.parametrize(
    "node",
    [
        {"@type": "dict", "@value": {"password=" + SECRET: {"@type": "int", "@value": 1}}},
        {"@type": "Thing", "@value": {"token=" + SECRET: {"@type": "int", "@value": 1}}},
        {"@type": "list", "@value": [
            {"@type": "tuple", "@value": [
                {"@type": "str", "@value": "X-Api-Key"}, {"@type": "str", "@value": SECRET}]},
            {"@type": "tuple", "@value": [
                {"@type": "str", "@value": "Accept"}, {"@type": "str", "@value": "text/html"}]},
        ]},
        {"@type": "tuple", "@value": [
            {"@type": "str", "@value": "password"}, {"@type": "str", "@value": SECRET}]},
    ],
    ids=["map key", "field name", "header list", "secret pair"],
)  # fmt: skip
def test_secret_shapes_in_values_are_redacted(node: dict[str, Any]) -> None:
    assert SECRET not in json.dumps(values.value(node, REDACTOR))


def test_card_shaped_numbers_are_redacted() -> None:
    shown = values.value({"@type": "int", "@value": 4111111111111111}, REDACTOR)
    assert shown == {"t": "int", "cut": "redacted"}
    assert values.value({"@type": "int", "@value": 10**15 + 1}, REDACTOR)["v"] == 10**15 + 1


def test_agent_texts_of_an_error_are_masked() -> None:
    frame = {
        "error": {"name": "<class 'token=" + SECRET + "'>", "message": "m"},
        "fileName": "/srv/password=" + SECRET + ".py",
        "methodName": "f",
        "lineNo": 3,
        "frames": [{"fileName": "/srv/token=" + SECRET, "methodName": "token=" + SECRET}],
        "time": 1796298366190,
    }
    for found in (frame["frames"], []):
        event = events.exception({**frame, "frames": found}, "python", REDACTOR)
        assert SECRET not in json.dumps(event)
