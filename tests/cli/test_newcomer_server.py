"""What a newcomer met on a first try, against a real server process and peers that speak
the agent's protocol: each test here failed before its fix."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from e2e.server_process import ProtocolPeer, ServerProcess
from peephole import protocol
from peephole.client import Client, InvalidRequest, NewProbe, Target

from .conftest import Cli
from .test_server_flows import eventually, unique

pytestmark = [pytest.mark.slow, pytest.mark.server]

NO_CODE = "no code at line 3; nearest lines with code: 2, 5"


def strict(probe: dict[str, Any]) -> tuple[str, str | None]:
    """An agent that refuses calls in conditions and has no code on line 3 of any file."""
    if "(" in (probe.get("condition") or ""):
        return protocol.ERROR, "condition: calls are not allowed: total()"
    if probe["line"] == 3:
        return protocol.ERROR, NO_CODE
    if probe["file"].startswith("missing/"):
        return (
            protocol.ERROR,
            f"no such file: no loaded module or file on sys.path matches {probe['file']}",
        )
    return protocol.ACTIVE, None


def probe_id_of(out: str) -> str:
    return out.split()[1]


def test_edit_reports_the_new_versions_status(cli: Cli, logged_in: ServerProcess) -> None:
    with ProtocolPeer(logged_in.url, unique("edit"), judge=strict):
        added = cli("tracepoint", "add", "a.py:4", "--condition", "total() > 1")
        assert added.code == 1 and "calls are not allowed" in added.err
        probe_id = probe_id_of(added.out)
        edited = cli("probes", "edit", probe_id, "--condition", "total > 1")
        assert edited.code == 0, edited.err
        assert edited.out == (f"probe {probe_id} updated to version 2: active on 1 of 1 instance\n")
        cli("probes", "rm", probe_id)


def test_a_misplaced_probe_suggests_moving_it(cli: Cli, logged_in: ServerProcess) -> None:
    service = unique("move")
    with ProtocolPeer(logged_in.url, service, judge=strict) as peer:
        added = cli("tracepoint", "add", "a.py:3")
        assert added.code == 1
        probe_id = probe_id_of(added.out)
        assert "probes edit" not in added.err
        assert f"move it with `peephole probes move {probe_id} a.py:2`" in added.err
        assert NO_CODE in added.err

        missing = cli("tracepoint", "add", "missing/x.py:4")
        assert missing.code == 1 and "probes edit" not in missing.err
        assert f"`peephole source {service}`" in missing.err
        assert f"peephole probes move {probe_id_of(missing.out)} FILE:LINE" in missing.err

        moved = cli("probes", "move", probe_id, "a.py:2")
        assert moved.code == 0, moved.err
        assert moved.out == (
            f"probe {probe_id} moved to a.py:2 (version 2): active on 1 of 1 instance\n"
        )
        assert eventually(lambda: any(p["id"] == probe_id and p["line"] == 2 for p in peer.probes))
        audit = json.loads(cli("audit", "--probe", probe_id, "--json").out)
        assert any(e["action"] == "probe.update" and e["details"].get("line") == 2 for e in audit)
        for listed in (probe_id, probe_id_of(missing.out)):
            cli("probes", "rm", listed)


def test_a_failed_placement_is_in_state_error(cli: Cli, logged_in: ServerProcess) -> None:
    with ProtocolPeer(logged_in.url, unique("err"), judge=strict):
        failed = probe_id_of(cli("tracepoint", "add", "a.py:3").out)
        placed = probe_id_of(cli("tracepoint", "add", "a.py:7").out)
        errors = json.loads(cli("probes", "list", "--state", "error", "--json").out)
        assert failed in [p["id"] for p in errors] and placed not in [p["id"] for p in errors]
        assert all(p["state"] == "error" for p in errors)
        assert "error" in cli("probes", "show", failed).out.split("state", 1)[1].split()[0]
        for probe_id in (failed, placed):
            cli("probes", "rm", probe_id)


def test_a_syntax_error_has_a_column_and_a_caret(cli: Cli, logged_in: ServerProcess) -> None:
    result = cli("tracepoint", "add", "a.py:4", "-s", "x", "--condition", "total >")
    assert result.code == 1
    assert "Value error" not in result.err
    assert result.err.splitlines() == [
        "error: invalid --condition: syntax error at column 8: invalid syntax",
        "    total >",
        "           ^",
    ]
    with Client() as client, pytest.raises(InvalidRequest) as caught:
        client.create_probe(
            NewProbe("tracepoint", "a.py", 4, condition="a +* b", target=Target(service="x"))
        )
    assert caught.value.reason.startswith("syntax error at column 4")


def test_an_unclosed_template_brace_is_refused_by_the_server(
    cli: Cli, logged_in: ServerProcess
) -> None:
    result = cli("logpoint", "add", "a.py:4", "total {cart.total", "-s", "x")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "error: invalid TEMPLATE: placeholder at column 7 is not closed with '}'"
    )
    bad = cli("logpoint", "add", "a.py:4", "total {cart.total +}", "-s", "x")
    assert bad.code == 1 and "syntax error at column" in bad.err
    fine = cli("logpoint", "add", "a.py:4", "{{literal}} {len(cart)}", "-s", "x", "--json")
    assert fine.code == 0, fine.err
    cli("probes", "rm", json.loads(fine.out)["id"])


def test_an_unknown_service_is_warned_about(cli: Cli, logged_in: ServerProcess) -> None:
    known = unique("known")
    with ProtocolPeer(logged_in.url, known):
        result = cli("tracepoint", "add", "a.py:4", "--service", "nope-" + known)
        assert result.code == 0, result.err
        assert result.err.startswith(
            f"warning: no instance of service 'nope-{known}' has ever connected; known services: "
        )
        assert known in result.err
        quiet = cli("tracepoint", "add", "a.py:4", "--service", known)
        assert quiet.err == ""
        for out in (result.out, quiet.out):
            cli("probes", "rm", probe_id_of(out))


def test_any_unique_prefix_of_an_id_is_accepted(cli: Cli, logged_in: ServerProcess) -> None:
    with ProtocolPeer(logged_in.url, unique("prefix")) as peer:
        created = [
            json.loads(cli("tracepoint", "add", "a.py:9", "--json").out)["id"] for _ in range(17)
        ]  # 17 hex ids: two share their first character
        shown = cli("probes", "show", created[0][:10], "--json")
        assert shown.code == 0, shown.err
        assert json.loads(shown.out)["id"] == created[0]
        assert cli("probes", "disable", created[0][:10]).code == 0
        first = Counter(i[0] for i in created).most_common(1)[0][0]
        ambiguous = cli("probes", "show", first)
        assert ambiguous.code == 1
        assert f"'{first}' is ambiguous" in ambiguous.err

        event = {
            "id": uuid.uuid4().hex,
            "type": "snapshot",
            "time": time.time(),
            "probe_id": created[0],
            "file": "a.py",
            "line": 9,
            "frames": [],
        }
        peer.send_events(event)
        with Client() as client:
            assert eventually(lambda: client.events(probe_id=created[0]).items)
        snapshot = cli("snapshots", "show", event["id"][:12], "--json")
        assert snapshot.code == 0, snapshot.err
        assert json.loads(snapshot.out)["id"] == event["id"]
        listed = json.loads(cli("snapshots", "list", "--probe", created[0][:10], "--json").out)
        assert [e["id"] for e in listed["events"]] == [event["id"]]
        assert event["id"] in cli("events", "tail", "--probe", created[0][:10]).out
        assert cli("probes", "rm", *created).code == 0
