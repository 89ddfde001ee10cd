"""An agent's own health reaches the server: its internal errors (counted, the last one named)
and the events it abandoned at exit, stored with the instance and shown by the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from rich.console import Console

from peephole.cli import render
from peephole.client.models import Instance
from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess, clean_env

pytestmark = [pytest.mark.server, pytest.mark.slow]

JOB = """\
import peephole
from peephole.agent.safe.capture import Capturer


def broken(*args, **kwargs):
    raise RuntimeError("capture broke")


def work(n):
    return n  # @probe


agent = peephole.start(wait=20)
Capturer.frames = broken  # every snapshot fails inside the agent
for n in range(3):
    work(n)
agent.config.exit_timeout = 0.0  # nothing buffered may be sent at exit: all abandoned
agent.emit({"type": "log", "id": "x" * 32, "time": 1.0, "message": "never sent"})
"""


def test_internal_errors_and_abandoned_events_are_stored_with_the_instance(
    server_process: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = server_process()
    (tmp_path / "job.py").write_text(JOB)
    api = server.api()
    api.post(
        "/probes",
        json={
            "kind": "tracepoint",
            "file": "job.py",
            "line": 10,
            "target": {"service": "health-job"},
        },
    ).raise_for_status()
    env = clean_env(
        PEEPHOLE_SERVER=server.url,
        PEEPHOLE_KEY=AGENT_KEY,
        PEEPHOLE_SERVICE="health-job",
        PYTHONPATH=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, str(tmp_path / "job.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the agent's failures are never printed

    def stored() -> Any:
        found = api.get("/instances", params={"service": "health-job", "include_gone": True})
        return [i for i in found.json() if i["abandoned_events"]]

    [instance] = wait_until(stored, 15, "the last status never arrived")
    assert instance["internal_errors"] == 3
    assert instance["last_internal_error"] == "probe hit: RuntimeError: capture broke"
    assert instance["abandoned_events"] == 1
    shown = Instance.from_dict(instance).agent_problems()
    assert shown == (
        "agent internal errors: 3, last: probe hit: RuntimeError: capture broke; "
        "1 events abandoned at exit"
    )
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render.instances([Instance.from_dict(instance)]))
    assert f"{instance['instance_id']}: {shown}" in console.export_text()
