"""Events the agent sent to a server that died before it acknowledged them are sent again to
the restarted server and stored once: the agent's transport against a real server process,
killed at a chosen point (the batch sent, the server stopped before reading it)."""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

import pytest

from peephole import protocol
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.delivery.transport import Transport
from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.slow]

HANG = 120  # seconds: a bound on every wait here that only catches a hang


def lines(probe_id: str, *messages: str) -> list[dict[str, Any]]:
    """Log events of ``probe_id``, as a logpoint makes them."""
    return [
        protocol.new_event(
            protocol.LOG, probe_id=probe_id, file="shop/cart.py", line=3, message=m, errors=[]
        )
        for m in messages
    ]


def test_a_batch_sent_but_never_acknowledged_is_sent_again_and_stored_once(
    server_process: Callable[..., ServerProcess],
) -> None:
    server = server_process()
    api = server.api()
    probe = api.post(
        "/probes",
        json={
            "kind": "logpoint",
            "file": "shop/cart.py",
            "line": 3,
            "template": "x",
            "target": {"service": "shop"},
        },
    ).json()
    config = AgentConfig(service="shop", server=server.url, key=AGENT_KEY, capture_exceptions=False)
    # The ack wait ends when the connection does, never on a timer; reconnects come quickly.
    transport = Transport(config, backoff_initial=0.05, backoff_max=0.5, ack_timeout=HANG * 10)
    agent = Agent(config)  # no delivery thread: the test hands the transport its batches
    transport.start(agent)
    try:
        assert transport.wait_ready(HANG)
        assert transport.deliver(lines(probe["id"], "stored 1", "stored 2"))

        # The server stops reading; a batch goes out and waits for its ack; the server dies.
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        unacked = lines(probe["id"], "resent 1", "resent 2", "resent 3")
        outcome: list[bool] = []
        sender = threading.Thread(target=lambda: outcome.append(transport.deliver(unacked)))
        sender.start()
        wait_until(lambda: transport._pending, HANG, "the batch was never sent")
        server.process.kill()
        server.process.wait()
        sender.join(HANG)
        assert outcome == [False]  # not acknowledged: the agent's buffer keeps it

        server.start()
        wait_until(lambda: transport.connected, HANG, "the agent never reconnected")
        assert transport.deliver(unacked)
        assert transport.deliver(unacked)  # an ack lost after storing: sent again, stored once
        stored = [e["message"] for e in server.events(api, probe_id=probe["id"])]
        assert sorted(stored) == ["resent 1", "resent 2", "resent 3", "stored 1", "stored 2"]
    finally:
        transport.stop()
        agent.stop()
        api.close()
