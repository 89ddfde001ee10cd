"""A real agent paused with SIGSTOP (what ``docker pause``, an attached debugger or a frozen
VM do) never holds up probe changes, for other services or its own: it is disconnected after
the send deadline, and told why when it comes back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess, clean_env

pytestmark = [pytest.mark.server, pytest.mark.slow]

APP = """\
import json, logging, os, time

import peephole

logging.basicConfig(level=logging.INFO)
agent = peephole.start()

def work(n):
    total = n * 2  # @work
    return total


def idle():  # never called: probes here cost nothing
    return 0  # @idle


stop, report = os.environ["APP_STOP_FILE"], os.environ["APP_REPORT_FILE"]
n = 0
while not os.path.exists(stop):
    n += 1
    work(n)
    drops = {s.probe_id: s.drops for s in agent.statuses()}  # hits the agent did not log
    with open(report + ".new", "w") as file:
        json.dump(drops, file)
    os.replace(report + ".new", report)
    time.sleep(0.02)
peephole.stop()
"""


IDLE_LINE = next(n for n, text in enumerate(APP.splitlines(), 1) if "# @idle" in text)
WORK_LINE = next(n for n, text in enumerate(APP.splitlines(), 1) if "# @work" in text)


class AgentApp:
    """A real application process with the peephole agent started in it."""

    def __init__(self, server: ServerProcess, workdir: Path, service: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "app.py").write_text(APP)
        self.stop_file = workdir / "stop"
        self.report_file = workdir / "report.json"
        self.log_path = workdir / "app.log"
        env = clean_env(
            PEEPHOLE_SERVER=server.url,
            PEEPHOLE_KEY=AGENT_KEY,
            PEEPHOLE_SERVICE=service,
            APP_STOP_FILE=str(self.stop_file),
            APP_REPORT_FILE=str(self.report_file),
        )
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(workdir / "app.py")],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def drops(self, probe_id: str) -> int:
        """The hits of a probe the agent counted as not logged (CPU budget, rates, buffer)."""
        return int(json.loads(self.report_file.read_text()).get(probe_id, 0))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.stop_file.touch()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def agent_app(tmp_path: Path) -> Iterator[Callable[[ServerProcess, str], AgentApp]]:
    started: list[AgentApp] = []

    def start(server: ServerProcess, service: str) -> AgentApp:
        app = AgentApp(server, tmp_path / f"app{len(started)}", service)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


SEND_TIMEOUT = 30.0  # a request that waited on the paused agent would wait most of this
FILL = 200  # big probes for the paused service: ~5 MB, more than the sockets buffer
CHANGES = 200  # then creates, edits and deletes, mostly for other services
BIG = {
    "kind": "tracepoint",
    "file": "app.py",
    "line": IDLE_LINE,
    "watches": ['"' + "x" * 990 + '"'] * 20,
    "target": {"service": "frozen"},
}
# Seconds no change may take: a bound that only catches a request waiting on the paused agent
# (which would wait out most of the send deadline); at load average 11 the slowest took 0.54 s.
HANG = SEND_TIMEOUT / 2


def timed(
    api: httpx.Client, method: str, path: str, expected: int, body: Any = None
) -> tuple[float, httpx.Response]:
    """One request, checked; and how long it took."""
    began = time.monotonic()
    response = api.request(method, path, json=body)
    assert response.status_code == expected, response.text[:300]
    return time.monotonic() - began, response


def test_a_stopped_agent_blocks_nobody(
    server_process: Callable[..., ServerProcess], agent_app: Callable[..., AgentApp]
) -> None:
    server = server_process(PEEPHOLE_SERVER_SEND_TIMEOUT=str(SEND_TIMEOUT))
    frozen = agent_app(server, "frozen")
    with server.api() as api:
        api.timeout = httpx.Timeout(SEND_TIMEOUT * 2)  # HANG, not the client, says a change hung
        wait_until(
            lambda: api.get("/instances", params={"service": "frozen"}).json(),
            30,
            "the agent never registered",
        )
        counter = api.post(
            "/probes",
            json={  # one log line per loop: n=1, n=2, ...
                "kind": "logpoint",
                "file": "app.py",
                "line": WORK_LINE,
                "template": "{n}",
                "target": {"service": "frozen"},
            },
        ).json()["id"]
        wait_until(lambda: server.events(api, probe_id=counter), 30, "no log lines")
        frozen.process.send_signal(signal.SIGSTOP)
        slowest = 0.0
        started = time.monotonic()
        frozen_ids = []
        for _ in range(FILL):
            took, response = timed(api, "POST", "/probes", 201, BIG)
            slowest = max(slowest, took)
            frozen_ids.append(response.json()["id"])
        placed: list[str] = []
        for index in range(CHANGES):
            if index % 10 == 9:  # the paused agent's own service changes too
                took, _ = timed(api, "PATCH", f"/probes/{frozen_ids[index]}", 200, {"hit_limit": 5})
            elif index % 4 == 3:
                took, _ = timed(api, "DELETE", f"/probes/{placed.pop()}", 204)
            elif index % 4 == 2:
                took, _ = timed(
                    api, "PATCH", f"/probes/{placed[-1]}", 200, {"template": f"y{index}"}
                )
            else:
                took, response = timed(
                    api,
                    "POST",
                    "/probes",
                    201,
                    {
                        "kind": "logpoint",
                        "file": "other.py",
                        "line": index + 1,
                        "template": "x",
                        "target": {"service": f"other{index % 7}"},
                    },
                )
                placed.append(response.json()["id"])
            slowest = max(slowest, took)
        elapsed = time.monotonic() - started
        print(f"\n{FILL + CHANGES} changes in {elapsed:.1f} s, slowest {slowest:.3f} s")
        assert slowest < HANG, f"a change took {slowest:.2f} s: it waited on the paused agent"

        def frozen_instance() -> dict[str, Any]:
            [instance] = api.get(
                "/instances", params={"service": "frozen", "include_gone": True}
            ).json()
            return instance  # type: ignore[no-any-return]

        # Its reason, not "connected": false, which a paused agent also shows once it has
        # been silent for a minute (a loaded machine can take that long over the changes).
        wait_until(
            lambda: "did not read" in (frozen_instance()["last_disconnect"] or ""),
            SEND_TIMEOUT + 60,  # a bound that only catches a hang
            "the paused agent was never disconnected for not reading",
        )
        frozen.process.send_signal(signal.SIGCONT)
        wait_until(lambda: frozen_instance()["connected"], 60, "the agent never came back")
        assert "did not read" in (frozen_instance()["last_disconnect"] or "")

        def summaries() -> set[str]:
            return {p["summary"] for p in api.get("/probes", params={"service": "frozen"}).json()}

        wait_until(
            lambda: summaries() == {"active on 1 of 1 instance"},
            60,
            "the resumed agent did not install its probes",
        )
        frozen.stop()  # the agent flushes what it captured before it exits
        numbers = sorted(int(e["message"]) for e in server.events(api, probe_id=counter))
        missing = (numbers[-1] - numbers[0] + 1) - len(set(numbers))
        dropped = frozen.drops(counter)  # e.g. the CPU budget, after a hit spanned the pause
        print(f"{len(numbers)} log lines from n={numbers[0]} to n={numbers[-1]}, {missing} missing")
        assert missing <= dropped, f"{missing} lines missing, the agent dropped {dropped} hits"
    log = frozen.log_path.read_text()
    assert "the server had disconnected this agent" in log and "did not read" in log, log[-2000:]
