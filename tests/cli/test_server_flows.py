"""The CLI against a real server process, with instances that speak the real wire protocol."""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.server_process import ADMIN_TOKEN, ProtocolPeer, ServerProcess
from peephole import protocol
from peephole.client import AsyncClient, Client, Event
from waiting import wait_until

from .conftest import Cli

pytestmark = [pytest.mark.slow, pytest.mark.server]
GOLDEN = Path(__file__).parent / "golden"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    return wait_until(check, timeout, f"{check} never held")


def fixture_event(name: str, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    event.update(id=uuid.uuid4().hex, time=time.time(), **fields)
    for key in ("service", "instance_id", "trace_link"):
        event.pop(key, None)
    return event


def test_login_saves_a_private_config_used_later(
    cli: Cli, server: ServerProcess, isolated_config: Path
) -> None:
    result = cli("login", "--url", server.url, "--token", ADMIN_TOKEN)
    assert result.code == 0, result.err
    assert result.out.startswith(f"logged in to {server.url} as ")
    assert stat.S_IMODE(isolated_config.stat().st_mode) == 0o600
    assert json.loads(isolated_config.read_text()) == {"url": server.url, "token": ADMIN_TOKEN}
    listed = cli("services", "--json")
    assert listed.code == 0, listed.err
    assert isinstance(json.loads(listed.out), list)


def test_login_with_a_bad_token_saves_nothing(
    cli: Cli, server: ServerProcess, isolated_config: Path
) -> None:
    result = cli("login", "--url", server.url, "--token", "wrong")
    assert result.code == 1
    assert result.err.startswith("error: the server refused the token: ")
    assert result.err.endswith("; run `peephole login` or set PEEPHOLE_TOKEN\n")
    assert not isolated_config.exists()


def test_bad_and_missing_token(cli: Cli, server: ServerProcess) -> None:
    for args in (["--token", "wrong"], []):
        result = cli("--url", server.url, *args, "probes", "list")
        assert result.code == 1
        assert result.err.count("\n") == 1
        assert "the server refused the token" in result.err and "peephole login" in result.err


def test_services_and_instances(cli: Cli, logged_in: ServerProcess) -> None:
    service = unique("svc")
    with ProtocolPeer(logged_in.url, service, version="1.2", environment="prod") as peer:
        services = json.loads(cli("services", "--json").out)
        mine = next(s for s in services if s["name"] == service)
        assert (mine["instances"], mine["versions"], mine["environments"]) == (1, ["1.2"], ["prod"])
        table = cli("services").out
        assert service in table and "1.2" in table
        instances = json.loads(cli("instances", "--service", service, "--json").out)
        assert [i["instance_id"] for i in instances] == [peer.instance_id]
        assert peer.instance_id in cli("instances", "-s", service).out


def test_probe_lifecycle(cli: Cli, logged_in: ServerProcess) -> None:
    service = unique("shop")
    with ProtocolPeer(logged_in.url, service) as peer:
        added = cli(
            "tracepoint",
            "add",
            "shop/cart.py:42",
            "--condition",
            "total > 100",
            "-w",
            "len(items)",
            "-w",
            "user.id",
            "--hits",
            "5",
            "--expire",
            "30m",
            "--json",
        )
        assert added.code == 0, added.err
        probe = json.loads(added.out)
        assert probe["target"]["service"] == service  # the only connected service
        assert (probe["kind"], probe["file"], probe["line"]) == ("tracepoint", "shop/cart.py", 42)
        assert (probe["condition"], probe["watches"], probe["hit_limit"]) == (
            "total > 100",
            ["len(items)", "user.id"],
            5,
        )
        assert abs(probe["expires_at"] - (time.time() + 1800)) < 60
        assert [s["instance_id"] for s in probe["statuses"]] == [peer.instance_id]
        probe_id = probe["id"]

        listed = json.loads(cli("probes", "list", "--service", service, "--json").out)
        assert [p["id"] for p in listed] == [probe_id]
        shown = cli("probes", "show", probe_id)
        assert shown.code == 0 and peer.instance_id in shown.out and "total > 100" in shown.out

        edited = cli("probes", "edit", probe_id, "--condition", "total > 5", "--hits", "7")
        assert edited.code == 0, edited.err
        assert edited.out.startswith(f"probe {probe_id} updated to version 2")
        assert eventually(
            lambda: any(
                p.get("version") == 2 and p["condition"] == "total > 5" for p in peer.probes
            )
        )

        assert cli("probes", "disable", probe_id).code == 0
        disabled = json.loads(cli("probes", "show", probe_id, "--json").out)
        assert (disabled["enabled"], disabled["state"]) == (False, "disabled")
        enabled = json.loads(cli("probes", "enable", probe_id, "--json").out)
        assert enabled["enabled"] is True

        removed = cli("probes", "rm", probe_id)
        assert (removed.code, removed.out) == (0, f"probe {probe_id} removed\n")
        gone = cli("probes", "show", probe_id)
        assert gone.code == 1
        assert gone.err == (
            f"error: probe '{probe_id}' not found; list them with `peephole probes list`\n"
        )


def test_logpoint_with_explicit_target(cli: Cli, logged_in: ServerProcess) -> None:
    result = cli(
        "logpoint",
        "add",
        "shop/pay.py:7",
        "paid {amount}",
        "--service",
        "nobody-yet",
        "--env",
        "prod",
        "--tag",
        "region=eu",
        "--level",
        "warning",
        "--json",
    )
    assert result.code == 0, result.err
    probe = json.loads(result.out)
    assert (probe["template"], probe["level"]) == ("paid {amount}", "warning")
    assert probe["target"]["tags"] == {"region": "eu"}
    assert probe["target"]["environment"] == "prod"
    cli("probes", "rm", probe["id"])


@pytest.mark.parametrize(
    "args",
    [
        ["probes", "show", "nope"],
        ["probes", "edit", "nope", "--hits", "2"],
        ["probes", "enable", "nope"],
        ["probes", "disable", "nope"],
        ["probes", "rm", "nope"],
    ],
)
def test_unknown_probe_id(cli: Cli, logged_in: ServerProcess, args: list[str]) -> None:
    result = cli(*args)
    assert (result.code, result.out) == (1, "")
    assert result.err == "error: probe 'nope' not found; list them with `peephole probes list`\n"


def test_unknown_event_and_exception(cli: Cli, logged_in: ServerProcess) -> None:
    event = cli("snapshots", "show", "nope")
    assert event.code == 1 and "peephole snapshots list" in event.err
    group = cli("exceptions", "show", "nope")
    assert group.code == 1 and "peephole exceptions list" in group.err


def test_default_target_needs_a_flag_with_two_services(cli: Cli, logged_in: ServerProcess) -> None:
    first, second = unique("alpha"), unique("beta")
    with ProtocolPeer(logged_in.url, first), ProtocolPeer(logged_in.url, second):
        result = cli("tracepoint", "add", "a.py:3")
        assert result.code == 2
        assert result.err.count("\n") == 1
        assert "services are connected (" in result.err
        assert first in result.err and second in result.err
        assert "choose one with --service NAME" in result.err


def test_no_service_connected(cli: Cli, logged_in: ServerProcess) -> None:
    assert not [s for s in Client().services() if s.instances], "a peer was left connected"
    result = cli("tracepoint", "add", "a.py:3")
    assert result.code == 2
    assert "no service is connected: name the target with --service NAME" in result.err


def test_invalid_request_names_the_field(cli: Cli, logged_in: ServerProcess) -> None:
    result = cli("tracepoint", "add", "a.py:3", "--service", "x", "--hits", "5000")
    assert result.code == 1
    assert result.err == "error: --hits must be at most 1000\n"


def test_expression_rejected_by_the_agent(cli: Cli, logged_in: ServerProcess) -> None:
    def judge(probe: dict[str, Any]) -> tuple[str, str | None]:
        if "(" in (probe.get("condition") or ""):
            return protocol.ERROR, "condition: calls are not allowed: total()"
        return protocol.ACTIVE, None

    with ProtocolPeer(logged_in.url, unique("strict"), judge=judge) as peer:
        result = cli("tracepoint", "add", "a.py:3", "--condition", "total() > 1")
        assert result.code == 1
        assert result.err.count("\n") == 1
        assert result.err.startswith(
            f"error: the agent on instance {peer.instance_id} rejected tracepoint "
        )
        assert "condition: calls are not allowed: total(); fix it with `peephole probes edit" in (
            result.err
        )
        probe_id = result.out.split()[1]
        accepted = cli("tracepoint", "add", "a.py:3", "--condition", "total > 1")
        assert accepted.code == 0, accepted.err
        assert "active on 1 of 1" in accepted.out
        for probe in (probe_id, accepted.out.split()[1]):
            cli("probes", "rm", probe)


def test_snapshots_events_and_exceptions(cli: Cli, logged_in: ServerProcess) -> None:
    service = unique("shop")
    with ProtocolPeer(logged_in.url, service) as peer:
        probe = json.loads(cli("tracepoint", "add", "shop/cart.py:42", "--json").out)
        snapshot = fixture_event("snapshot_event.json", probe_id=probe["id"])
        exception = fixture_event("exception_event.json", fingerprint=unique("fp"))
        log = {
            "id": uuid.uuid4().hex,
            "type": "log",
            "time": time.time(),
            "level": "info",
            "probe_id": probe["id"],
            "file": "shop/cart.py",
            "line": 42,
            "message": "cart 7 has [bold]3[/bold] items",
            "errors": [],
        }
        peer.send_events(snapshot, exception, log)
        client = Client()
        assert eventually(lambda: len(client.events(service=service).items) == 3)

        listed = cli("snapshots", "list", "--probe", probe["id"], "--json")
        page = json.loads(listed.out)
        assert [e["id"] for e in page["events"]] == [snapshot["id"]]
        assert page["events"][0]["frames"] == snapshot["frames"]
        assert snapshot["id"] in cli("snapshots", "list", "-s", service).out

        shown = cli("snapshots", "show", snapshot["id"])
        assert shown.code == 0, shown.err
        for text in (
            f"service {service} · instance {peer.instance_id}",
            "▶   0   add_item",
            "Locals of frame 0: add_item",
            "… 110 more items",
            "len(cart.items) = 112",
        ):
            assert text in shown.out
        frame = cli("snapshots", "show", snapshot["id"], "--frame", "1", "--depth", "0")
        assert "Locals of frame 1: add_to_cart" in frame.out
        missing = cli("snapshots", "show", snapshot["id"], "--frame", "9")
        assert missing.code == 2
        assert "frame 9 does not exist; this event has 4 frames (0-3)" in missing.err

        tail = cli("events", "tail", "--service", service, "--json")
        lines = [json.loads(line) for line in tail.out.splitlines()]
        assert [e["type"] for e in lines] == ["snapshot", "exception", "log"]  # oldest first
        text = cli("events", "tail", "--service", service, "--type", "log").out
        assert "cart 7 has [bold]3[/bold] items" in text

        groups = json.loads(cli("exceptions", "list", "--service", service, "--json").out)
        assert [(g["fingerprint"], g["exc_type"]) for g in groups] == [
            (exception["fingerprint"], "ZeroDivisionError")
        ]
        group = cli("exceptions", "show", exception["fingerprint"])
        assert group.code == 0, group.err
        assert "ZeroDivisionError: division by zero" in group.out
        assert "Locals of frame 1: total" in group.out
        cli("probes", "rm", probe["id"])


def test_events_tail_follow(logged_in: ServerProcess) -> None:
    service = unique("live")
    env = {**os.environ, "PEEPHOLE_URL": logged_in.url, "PEEPHOLE_TOKEN": ADMIN_TOKEN}
    with ProtocolPeer(logged_in.url, service) as peer:
        tail = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "peephole.cli.main",
                "events",
                "tail",
                "--follow",
                "--service",
                service,
                "--lines",
                "0",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert tail.stdout is not None
        stdout = tail.stdout

        def read() -> None:
            for line in stdout:
                lines.put(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            # The stream opens a moment after the process starts: send until a line arrives.
            line = None
            deadline = time.monotonic() + 20
            while line is None and time.monotonic() < deadline:
                peer.send_events(
                    {
                        "id": uuid.uuid4().hex,
                        "type": "log",
                        "time": time.time(),
                        "level": "info",
                        "file": "a.py",
                        "line": 1,
                        "message": "live!",
                    }
                )
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    assert tail.poll() is None, tail.stderr.read() if tail.stderr else ""
            assert line is not None, "no event arrived through `events tail --follow`"
            assert json.loads(line)["message"] == "live!"
        finally:
            tail.terminate()
            tail.wait(10)


async def test_async_client(logged_in: ServerProcess) -> None:
    service = unique("async")
    async with AsyncClient() as client:
        assert (await client.health()).status == "ok"
        assert (await client.me()).role == "admin"
        from peephole.client import NewProbe, Target

        probe = await client.create_probe(
            NewProbe("tracepoint", "a.py", 9, target=Target(service=service))
        )
        assert [p.id for p in await client.probes(service)] == [probe.id]
        stream = await client.stream(probe_id=probe.id)
        async with stream:
            await client.update_probe(probe.id, hit_limit=3)
            async for item in stream:
                if not isinstance(item, Event) and item.hit_limit == 3:
                    break
        await client.delete_probe(probe.id)


def test_tokens_roles_and_audit(cli: Cli, logged_in: ServerProcess) -> None:
    name = unique("viewer")
    created = json.loads(cli("tokens", "create", name, "--role", "viewer", "--json").out)
    assert (created["name"], created["role"]) == (name, "viewer") and created["token"]
    assert f"{name}  viewer" in cli("tokens", "list").out

    as_viewer = cli("--token", created["token"], "tracepoint", "add", "a.py:1", "-s", "x")
    assert as_viewer.code == 1
    assert as_viewer.err.startswith("error: permission denied: ")
    assert as_viewer.err.endswith("; ask an admin for a token with a higher role\n")
    assert cli("--token", created["token"], "probes", "list").code == 0

    probe = json.loads(cli("tracepoint", "add", "a.py:1", "-s", "x", "--json").out)
    cli("probes", "rm", probe["id"])
    entries = json.loads(cli("audit", "--probe", probe["id"], "--json").out)
    assert sorted(e["action"] for e in entries) == ["probe.create", "probe.delete"]
    assert all(e["probe_id"] == probe["id"] and e["actor"] for e in entries)
    assert probe["id"] in cli("audit", "--probe", probe["id"]).out

    key = json.loads(cli("agent-keys", "create", unique("key"), "--json").out)
    assert key["key"]


def test_policy_set_and_show(cli: Cli, logged_in: ServerProcess) -> None:
    service = unique("pol")
    with ProtocolPeer(logged_in.url, service):
        saved = cli(
            "policy",
            "set",
            service,
            "--redact-name",
            "pin",
            "--redact-name",
            "iban",
            "--no-capture-exceptions",
        )
        assert saved.code == 0, saved.err
        shown = json.loads(cli("policy", "show", service, "--json").out)
        assert (shown["redact_names"], shown["capture_exceptions"]) == (["pin", "iban"], False)
        cli("policy", "set", service, "--allow-name", "session")
        kept = json.loads(cli("policy", "show", service, "--json").out)
        assert (kept["redact_names"], kept["allow_names"]) == (["pin", "iban"], ["session"])
        assert "redact_names: pin, iban" in cli("policy", "show", service).out
