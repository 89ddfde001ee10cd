"""A real agent paused with SIGSTOP (what ``docker pause``, an attached debugger or a frozen
VM do) never holds up probe changes, for other services or its own: it is disconnected after
the send deadline, and told why when it comes back."""

from __future__ import annotations

import signal
import time
from typing import Any, Callable

import httpx
import pytest

from reliability.conftest import (
    IDLE_LINE,
    WORK_LINE,
    AgentApp,
    ServerProcess,
    admin_client,
    all_events,
    wait_for,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

SEND_TIMEOUT = 8.0
FILL = 200  # big probes for the paused service: ~5 MB, more than the sockets buffer
CHANGES = 200  # then creates, edits and deletes, mostly for other services
BIG = {
    "kind": "tracepoint",
    "file": "app.py",
    "line": IDLE_LINE,
    "watches": ['"' + "x" * 990 + '"'] * 20,
    "target": {"service": "frozen"},
}
PROMPT = 2.0  # seconds any one change may take


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
    with admin_client(server) as api:
        wait_for(
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
        wait_for(lambda: all_events(api, probe_id=counter), 30, "no log lines")
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
        assert slowest < PROMPT, f"a change took {slowest:.2f} s"

        def frozen_instance() -> dict[str, Any]:
            [instance] = api.get(
                "/instances", params={"service": "frozen", "include_gone": True}
            ).json()
            return instance  # type: ignore[no-any-return]

        wait_for(
            lambda: not frozen_instance()["connected"],
            SEND_TIMEOUT + 20,
            "the paused agent was never disconnected",
        )
        frozen.process.send_signal(signal.SIGCONT)
        wait_for(lambda: frozen_instance()["connected"], 30, "the agent never came back")
        assert "did not read" in (frozen_instance()["last_disconnect"] or "")

        def summaries() -> set[str]:
            return {p["summary"] for p in api.get("/probes", params={"service": "frozen"}).json()}

        wait_for(
            lambda: summaries() == {"active on 1 of 1 instance"},
            60,
            "the resumed agent did not install its probes",
        )
        frozen.stop()  # the agent flushes what it captured before it exits
        numbers = sorted(int(e["message"]) for e in all_events(api, probe_id=counter))
        lost = (numbers[-1] - numbers[0] + 1) - len(set(numbers))
        print(f"{len(numbers)} log lines from n={numbers[0]} to n={numbers[-1]}, {lost} lost")
        assert lost == 0
    log = frozen.log_path.read_text()
    assert "the server had disconnected this agent" in log and "did not read" in log, log[-2000:]
