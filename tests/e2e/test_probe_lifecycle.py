"""A real server process and real agent processes on the oldest and newest Python: place a
probe, see it hit, edit it, remove it, restart the server mid-stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess, clean_env

pytestmark = [pytest.mark.server, pytest.mark.slow]

CART = """\
def total(items, discount):
    subtotal = sum(items)
    result = subtotal - discount
    return result


def fail(order):
    basket = {"order": order, "items": [1, 2]}
    raise KeyError("order %d" % basket["order"])
"""

APP = """\
import json
import logging
import os
import threading
import time

import peephole

agent = peephole.start()

from shop import cart

stop = os.environ["APP_STOP_FILE"]
progress = os.environ["APP_PROGRESS_FILE"]
n = 0
while not os.path.exists(stop):
    n += 1
    # n, and the agent's own counts of what happened up to the hit of n - 1
    probes = {s.probe_id: [s.hits, s.captures, s.drops] for s in agent.statuses()}
    with open(progress + ".new", "w") as file:
        json.dump({"n": n, "probes": probes, "dropped": agent.dropped}, file)
    os.replace(progress + ".new", progress)  # the test reads whole files only
    cart.total([n, 2, 3], 1)
    if n % 25 == 0:
        try:
            cart.fail(n)
        except KeyError:
            logging.getLogger("shop").exception("order failed")
    time.sleep(0.02)
peephole.stop()
"""

LOGPOINT = {"kind": "logpoint", "file": "shop/cart.py", "line": 3, "target": {"service": "shop"}}
# Seconds to wait for what a restarted server and a reconnecting agent (its backoff reaches
# 30 s) deliver: a bound that only catches a hang, on a machine at load average 12.
ARRIVAL = 120
# Seconds for the agent to apply a change or log a line: a bound that only catches a hang (at
# load average 16 the CPU budget throttles the logpoint now and then, as it should).
SETTLE = 60


def interpreters() -> list[Any]:
    """The oldest and the newest Python dev.py gave us, else this one."""
    listed = [
        item.split("=", 1)
        for item in os.environ.get("PEEPHOLE_TEST_PYTHONS", "").split(",")
        if "=" in item
    ]
    if not listed:
        return [pytest.param(sys.executable, id="current")]
    listed.sort(key=lambda item: tuple(int(p) for p in item[0].split(".")))
    chosen = [listed[0], listed[-1]] if len(listed) > 1 else listed
    return [pytest.param(path, id=version) for version, path in chosen]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app" / "shop").mkdir(parents=True)
    (tmp_path / "app" / "shop" / "__init__.py").write_text("")
    (tmp_path / "app" / "shop" / "cart.py").write_text(CART)
    (tmp_path / "app" / "run_shop.py").write_text(APP)
    return tmp_path / "app"


@pytest.mark.parametrize("python", interpreters())
def test_probe_lifecycle_with_a_real_agent(
    python: str, server_process: Callable[..., ServerProcess], app_dir: Path, tmp_path: Path
) -> None:
    server = server_process()
    stop_file, progress_file = tmp_path / "stop", tmp_path / "progress"
    env = clean_env(
        PEEPHOLE_SERVER=server.url,
        PEEPHOLE_KEY=AGENT_KEY,
        PEEPHOLE_SERVICE="shop",
        PEEPHOLE_VERSION="1.0",
        APP_STOP_FILE=str(stop_file),
        APP_PROGRESS_FILE=str(progress_file),
        PYTHONPATH=str(app_dir),
    )
    with open(tmp_path / "app.log", "wb") as app_log:
        app = subprocess.Popen(
            [python, str(app_dir / "run_shop.py")],
            cwd=app_dir,
            env=env,
            stdout=app_log,
            stderr=subprocess.STDOUT,
        )
    api = server.api()
    try:
        [instance] = wait_until(
            lambda: api.get("/instances", params={"service": "shop"}).json(),
            30,
            "the agent never registered",
        )
        assert instance["version"] == "1.0"

        def events(**params: Any) -> list[dict[str, Any]]:
            return server.events(api, **params)

        def report() -> dict[str, Any]:
            """The app's last loop: ``n`` and the agent's counters before the hit of ``n``."""
            if not progress_file.exists():
                return {"n": 0, "probes": {}, "dropped": 0}
            return json.loads(progress_file.read_text())  # type: ignore[no-any-return]

        def progress() -> int:
            """How many times the app has called the probed function."""
            return int(report()["n"])

        # Place a tracepoint: three snapshots with the locals, then the probe is done.
        probe = api.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": "shop/cart.py",
                "line": 3,
                "hit_limit": 3,
                "target": {"service": "shop"},
            },
        ).json()

        def three_snapshots() -> list[dict[str, Any]]:
            found = events(probe_id=probe["id"])
            return found if len(found) >= 3 else []

        snapshots = wait_until(
            three_snapshots,
            30,
            "no snapshots arrived",
        )
        top = snapshots[0]["frames"][0]
        assert top["function"] == "total"
        assert top["locals"]["subtotal"]["t"] == "int"
        wait_until(
            lambda: api.get(f"/probes/{probe['id']}").json()["state"] == "done",
            SETTLE,
            "the probe never became done",
        )

        # A logpoint, edited while it runs, then removed.
        log = api.post("/probes", json={**LOGPOINT, "template": "sub={subtotal}"}).json()
        wait_until(
            lambda: (
                api.get(f"/probes/{log['id']}").json()["summary"] == "active on 1 of 1 instance"
            ),
            SETTLE,
            "the logpoint never became active",
        )
        wait_until(lambda: events(probe_id=log["id"]), SETTLE, "no log lines arrived")
        api.patch(f"/probes/{log['id']}", json={"template": "again {subtotal}"})
        wait_until(
            lambda: any(e["message"].startswith("again ") for e in events(probe_id=log["id"])),
            SETTLE,
            "the edit never applied",
        )

        # The server restarts mid-stream: nothing acknowledged is lost, the agent comes back,
        # and every line the app logged while the server was down arrives then. The agent's
        # own counters say which hits logged a line: the CPU budget may skip some on a loaded
        # machine (counted as drops: never logged, not lost), and nothing is dropped from the
        # agent's buffer (far under its byte budget), so what it captured must all be stored.
        before = len(events(probe_id=log["id"]))
        server.stop()
        first = report()
        last = wait_until(
            lambda: (latest := report())["n"] >= first["n"] + 10 and latest,
            SETTLE,
            "the app stopped running while the server was down",
        )
        server.start()
        assert len(events(probe_id=log["id"])) >= before
        hits, captures, drops = (
            b - a for a, b in zip(first["probes"][log["id"]], last["probes"][log["id"]])
        )
        calls = last["n"] - first["n"]  # the hits of first["n"] to last["n"] - 1
        assert (hits, captures + drops) == (calls, calls), (first, last)
        assert last["dropped"] == 0, last
        logged_while_down = {f"again {n + 5}" for n in range(first["n"], last["n"])}

        def stored_while_down() -> set[str]:
            return logged_while_down & {e["message"] for e in events(probe_id=log["id"])}

        def missing() -> str:
            lost = sorted(logged_while_down - stored_while_down())
            return (
                f"{captures} of {calls} lines logged while the server was down "
                f"({drops} hits dropped by the agent), {len(lost)} missing: {lost}"
            )

        wait_until(lambda: len(stored_while_down()) >= captures, ARRIVAL, missing)
        assert len(stored_while_down()) == captures

        # Deleted: the agent stops capturing. A logpoint placed after the delete proves the
        # agent applied it: once the new one's lines keep arriving, the deleted one's stopped
        # (lines captured before the removal reached the agent may arrive until then).
        api.delete(f"/probes/{log['id']}")
        marker = api.post("/probes", json={**LOGPOINT, "template": "marker {subtotal}"}).json()

        def marker_lines() -> int:
            return len(events(probe_id=marker["id"]))

        wait_until(lambda: marker_lines() >= 5, 30, "the logpoint placed after never logged")
        settled, seen = len(events(probe_id=log["id"])), marker_lines()
        wait_until(lambda: marker_lines() >= seen + 10, 30, "the later logpoint stopped")
        assert len(events(probe_id=log["id"])) == settled, "log lines kept arriving"
        # One app thread hits both, and the agent removes the deleted probe before it places
        # the later one: every line of the deleted one was logged before the later one's first.
        captured = max(e["time"] for e in events(probe_id=log["id"]))
        assert captured <= min(e["time"] for e in events(probe_id=marker["id"])), (
            "the agent kept capturing after the delete"
        )

        # Exceptions logged by the app are grouped.
        groups = wait_until(
            lambda: api.get("/exceptions", params={"service": "shop"}).json(),
            30,
            "no exception group",
        )
        assert "KeyError" in groups[0]["exc_type"] and groups[0]["count"] >= 1
        assert groups[0]["versions"] == ["1.0"]
    finally:
        stop_file.touch()
        try:
            app.wait(20)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        api.close()
    assert app.returncode == 0, (tmp_path / "app.log").read_text()
