"""A real agent paused with SIGSTOP (what ``docker pause``, an attached debugger or a frozen
VM do) never holds up probe changes for other services, is disconnected after the send
deadline, and learns why when it comes back."""

from __future__ import annotations

import signal
import time
from typing import Any, Callable

from .conftest import AgentApp, ServerProcess, admin_client, wait_for

SEND_TIMEOUT = 2.0
CHANGES = 200
IDLE_LINE = 15  # the body of idle() in the application
WATCH = '"' + "x" * 900 + '"'  # a long (valid) watch: each probe of the frozen service is ~4 KB


def test_a_stopped_agent_blocks_nobody(
    server_process: Callable[..., ServerProcess], agent_app: Callable[..., AgentApp]
) -> None:
    server = server_process(PEEPHOLE_SERVER_SEND_TIMEOUT=str(SEND_TIMEOUT))
    frozen = agent_app(server, "frozen")
    with admin_client(server) as api:
        wait_for(lambda: api.get("/instances", params={"service": "frozen"}).json(), 30,
                 "the agent never registered")
        frozen.process.send_signal(signal.SIGSTOP)
        # Fill what the paused agent can buffer: its socket and the server's send buffer.
        for _ in range(60):
            response = api.post("/probes", json={
                "kind": "tracepoint", "file": "app.py", "line": IDLE_LINE,
                "watches": [WATCH] * 4, "target": {"service": "frozen"}})
            assert response.status_code == 201, response.text
        # Probe changes for other services go through, each promptly.
        started = time.monotonic()
        slowest = 0.0
        placed: list[str] = []
        for index in range(CHANGES):
            began = time.monotonic()
            if index % 4 == 3:  # delete
                assert api.delete(f"/probes/{placed.pop()}").status_code == 204
            elif index % 4 == 2:  # edit
                response = api.patch(f"/probes/{placed[-1]}", json={"template": f"y{index}"})
                assert response.status_code == 200, response.text
            else:  # create
                response = api.post("/probes", json={
                    "kind": "logpoint", "file": "other.py", "line": index + 1,
                    "template": "x", "target": {"service": f"other{index % 7}"}})
                assert response.status_code == 201, response.text
                placed.append(response.json()["id"])
            slowest = max(slowest, time.monotonic() - began)
        elapsed = time.monotonic() - started
        assert slowest < 2.0, f"a change took {slowest:.2f} s"
        assert elapsed < 30, f"{CHANGES} changes took {elapsed:.1f} s"

        # The paused agent was disconnected; resumed, it reconnects and is told why.
        def frozen_instance() -> dict[str, Any]:
            [instance] = api.get("/instances", params={"service": "frozen",
                                                       "include_gone": True}).json()
            return instance  # type: ignore[no-any-return]

        wait_for(lambda: not frozen_instance()["connected"], SEND_TIMEOUT + 15,
                 "the paused agent was never disconnected")
        frozen.process.send_signal(signal.SIGCONT)
        wait_for(lambda: frozen_instance()["connected"], 30, "the agent never came back")
        assert "did not read" in (frozen_instance()["last_disconnect"] or "")
        probes = api.get("/probes", params={"service": "frozen"}).json()
        states = lambda: {p["summary"] for p in  # noqa: E731
                          api.get("/probes", params={"service": "frozen"}).json()}
        wait_for(lambda: states() == {"active on 1 of 1 instance"}, 30,
                 f"the resumed agent did not install its probes: {states()}")
        assert len(probes) == 60
    frozen.stop()
    assert "did not read" in frozen.log_path.read_text(), frozen.log_path.read_text()[-2000:]
