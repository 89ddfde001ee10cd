"""A real server process and real agent processes on the oldest and newest Python: place a
probe, see it hit, edit it, remove it, restart the server mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import pytest

from .server_process import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]

ADMIN_TOKEN = "e2e-admin-token"
AGENT_KEY = "e2e-agent-key"

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
import logging
import os
import threading
import time

import peephole

peephole.start()

from shop import cart

stop = os.environ["APP_STOP_FILE"]
n = 0
while not os.path.exists(stop):
    n += 1
    cart.total([n, 2, 3], 1)
    if n % 25 == 0:
        try:
            cart.fail(n)
        except KeyError:
            logging.getLogger("shop").exception("order failed")
    time.sleep(0.02)
peephole.stop()
"""


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


class ServerProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "peephole.server.main",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--admin-token",
                    ADMIN_TOKEN,
                    "--agent-key",
                    AGENT_KEY,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._healthy(), 30, "the server did not start")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/api/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
            self.process = None


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path / "data"
    data.mkdir()
    process = ServerProcess(data)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app" / "shop").mkdir(parents=True)
    (tmp_path / "app" / "shop" / "__init__.py").write_text("")
    (tmp_path / "app" / "shop" / "cart.py").write_text(CART)
    (tmp_path / "app" / "run_shop.py").write_text(APP)
    return tmp_path / "app"


@pytest.mark.parametrize("python", interpreters())
def test_probe_lifecycle_with_a_real_agent(
    python: str, server: ServerProcess, app_dir: Path, tmp_path: Path
) -> None:
    stop_file = tmp_path / "stop"
    env = {
        **os.environ,
        "PEEPHOLE_SERVER": server.url,
        "PEEPHOLE_KEY": AGENT_KEY,
        "PEEPHOLE_SERVICE": "shop",
        "PEEPHOLE_VERSION": "1.0",
        "APP_STOP_FILE": str(stop_file),
        "PYTHONPATH": str(app_dir),
    }
    with open(tmp_path / "app.log", "wb") as app_log:
        app = subprocess.Popen(
            [python, str(app_dir / "run_shop.py")],
            cwd=app_dir,
            env=env,
            stdout=app_log,
            stderr=subprocess.STDOUT,
        )
    api = httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    try:
        [instance] = wait_for(
            lambda: api.get("/instances", params={"service": "shop"}).json(),
            30,
            "the agent never registered",
        )
        assert instance["version"] == "1.0"

        def events(**params: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = api.get(
                "/events", params={"limit": 500, **params}
            ).json()["events"]
            return found

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
        snapshots = wait_for(
            lambda: len(events(probe_id=probe["id"])) >= 3 and events(probe_id=probe["id"]),
            30,
            "no snapshots arrived",
        )
        top = snapshots[0]["frames"][0]
        assert top["function"] == "total"
        assert top["locals"]["subtotal"]["t"] == "int"
        wait_for(
            lambda: api.get(f"/probes/{probe['id']}").json()["state"] == "done",
            15,
            "the probe never became done",
        )

        # A logpoint, edited while it runs, then removed.
        log = api.post(
            "/probes",
            json={
                "kind": "logpoint",
                "file": "shop/cart.py",
                "line": 3,
                "template": "sub={subtotal}",
                "target": {"service": "shop"},
            },
        ).json()
        wait_for(
            lambda: (
                api.get(f"/probes/{log['id']}").json()["summary"] == "active on 1 of 1 instance"
            ),
            15,
            "the logpoint never became active",
        )
        wait_for(lambda: events(probe_id=log["id"]), 15, "no log lines arrived")
        api.patch(f"/probes/{log['id']}", json={"template": "again {subtotal}"})
        wait_for(
            lambda: any(e["message"].startswith("again ") for e in events(probe_id=log["id"])),
            15,
            "the edit never applied",
        )

        # The server restarts mid-stream: nothing acknowledged is lost, the agent comes back.
        before = len(events(probe_id=log["id"]))
        server.stop()
        time.sleep(1)
        server.start()
        assert len(events(probe_id=log["id"])) >= before
        wait_for(
            lambda: len(events(probe_id=log["id"])) > before + 5,
            60,
            "the agent did not reconnect and send again",
        )

        # Deleted: the agent stops capturing. Lines captured before the removal reached it may
        # still arrive (the backlog buffered while the server was down), then no more.
        deleted_at = time.time()
        api.delete(f"/probes/{log['id']}")
        counts = [-1]
        for _ in range(30):  # until the count holds still for 2 s, 60 s at most
            time.sleep(2.0)
            counts.append(len(events(probe_id=log["id"])))
            if counts[-1] == counts[-2]:
                break
        assert counts[-1] == counts[-2], f"log lines kept arriving: {counts}"
        captured = [e["time"] for e in events(probe_id=log["id"])]
        assert max(captured) < deleted_at + 5.0, "the agent kept capturing after the delete"

        # Exceptions logged by the app are grouped.
        groups = wait_for(
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
