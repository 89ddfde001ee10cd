"""The whole path with real parts: a server process, a tiny program started with
`peephole run` (the real agent inside it), probes placed with the CLI, snapshots shown."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.conftest import Cli, isolated_config  # noqa: F401  (autouse: no real user config)

from .server_process import AGENT_KEY, ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.server]

PROGRAM = """\
import time


def checkout(cart, discount):
    total = sum(cart.values()) - discount
    return total


deadline = time.monotonic() + 120
round = 0
while time.monotonic() < deadline:
    round += 1
    checkout({"apple": 3, "pear": round}, discount=1)
    time.sleep(0.05)
"""
LINE = 6  # `return total`


@pytest.fixture
def app(logged_in: ServerProcess, tmp_path: Path) -> Iterator[str]:
    """The program running under the agent; yields its service name once it is connected."""
    service = f"tiny-{uuid.uuid4().hex[:6]}"
    (tmp_path / "tiny.py").write_text(PROGRAM)
    log = open(tmp_path / "app.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peephole.cli.main",
            "run",
            "--service",
            service,
            "--server",
            logged_in.url,
            "--key",
            AGENT_KEY,
            "--",
            sys.executable,
            "tiny.py",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        from peephole.client import Client

        with Client() as client:
            deadline = time.monotonic() + 30
            while not any(s.name == service and s.instances for s in client.services()):
                assert process.poll() is None, (tmp_path / "app.log").read_text()
                assert time.monotonic() < deadline, "the agent did not connect"
                time.sleep(0.1)
        yield service
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_tracepoint_snapshot_show(cli: Cli, app: str) -> None:
    added = cli(
        "tracepoint",
        "add",
        f"tiny.py:{LINE}",
        "--service",
        app,
        "--hits",
        "2",
        "--watch",
        "cart['pear'] > 0",
        "--json",
    )
    assert added.code == 0, added.err
    probe = json.loads(added.out)
    assert [s["state"] in ("active", "done") for s in probe["statuses"]] == [True]

    deadline = time.monotonic() + 20
    while True:
        page = json.loads(cli("snapshots", "list", "--probe", probe["id"], "--json").out)
        if len(page["events"]) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(page["events"]) == 2
    snapshot_id = page["events"][0]["id"]

    shown = cli("snapshots", "show", snapshot_id)
    assert shown.code == 0, shown.err
    out = shown.out
    assert f"probe {probe['id']} v1 at " in out and f"tiny.py:{LINE}" in out
    assert "▶   0   checkout" in out and "<module>" in out, out
    assert "Locals of frame 0: checkout" in out
    assert "cart: dict (2 items)" in out and "['apple'] = 3" in out
    assert "discount = 1" in out
    assert "cart['pear'] > 0 = True" in out

    as_json = json.loads(cli("snapshots", "show", snapshot_id, "--json").out)
    assert as_json["id"] == snapshot_id and as_json["frames"][0]["function"] == "checkout"
    done = json.loads(cli("probes", "show", probe["id"], "--json").out)
    assert done["captures"] == 2
    cli("probes", "rm", probe["id"])


def test_logpoint_lines_in_events_tail(cli: Cli, app: str) -> None:
    added = cli(
        "logpoint", "add", f"tiny.py:{LINE}", "total is {total}", "--service", app, "--hits", "3"
    )
    assert added.code == 0, added.err
    probe_id = added.out.split()[1]
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while len(lines) < 3 and time.monotonic() < deadline:
        tail = cli("events", "tail", "--probe", probe_id, "--type", "log")
        lines = [line for line in tail.out.splitlines() if "total is " in line]
        time.sleep(0.2)
    assert len(lines) == 3
    assert all(f"{app}  " in line and "info  total is " in line for line in lines), lines
    cli("probes", "rm", probe_id)


def test_agent_rejects_an_expression(cli: Cli, app: str) -> None:
    result = cli(
        "tracepoint", "add", f"tiny.py:{LINE}", "--service", app, "--condition", "cart.clear()"
    )
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert " rejected tracepoint " in result.err and "cart.clear" in result.err
    probe_id = result.out.split()[1]
    cli("probes", "rm", probe_id)

    no_code = cli("tracepoint", "add", "tiny.py:2", "--service", app)
    assert no_code.code == 1
    assert "no code at line 2" in no_code.err
    cli("probes", "rm", no_code.out.split()[1])


def test_source_as_deployed(cli: Cli, app: str) -> None:
    files = json.loads(cli("source", app, "--json").out)
    assert any(f.endswith("tiny.py") for f in files)
    shown = cli("source", app, "tiny.py", "--around", str(LINE))
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith("tiny.py (• can take a probe)")
    assert f"•  {LINE}      return total" in lines
    assert "   3" in lines  # a blank line: no code, no mark


def test_a_refused_place_is_fixed_with_probes_move(cli: Cli, app: str) -> None:
    """With the real agent's reasons: an expression is fixed with `probes edit`, a line
    without code with `probes move` to the nearest line that has some."""
    refused = cli(
        "tracepoint", "add", f"tiny.py:{LINE}", "--service", app, "--condition", "cart.clear()"
    )
    assert "fix it with `peephole probes edit " in refused.err
    edited = cli("probes", "edit", refused.out.split()[1], "--condition", "discount > 0")
    assert edited.code == 0, edited.err
    assert edited.out.endswith("version 2: active on 1 of 1 instance\n")

    no_code = cli("tracepoint", "add", "tiny.py:7", "--service", app, "--hits", "1")
    assert no_code.code == 1
    probe_id = no_code.out.split()[1]
    assert "probes edit" not in no_code.err
    assert f"move it with `peephole probes move {probe_id} tiny.py:6`" in no_code.err
    assert json.loads(cli("probes", "show", probe_id, "--json").out)["state"] == "error"
    assert probe_id in cli("probes", "list", "--state", "error").out

    moved = cli("probes", "move", probe_id[:8], "tiny.py:6")
    assert moved.code == 0, moved.err
    assert moved.out.startswith(f"probe {probe_id} moved to tiny.py:6 (version 2): ")
    deadline = time.monotonic() + 20
    while not json.loads(cli("snapshots", "list", "--probe", probe_id, "--json").out)["events"]:
        assert time.monotonic() < deadline, "the moved probe captured nothing"
        time.sleep(0.2)
    for done in (refused.out.split()[1], probe_id):
        cli("probes", "rm", done)
