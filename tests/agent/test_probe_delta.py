"""The agent's side of ``probes_delta``: it says it takes deltas, applies ``set``, ``remove``
and ``keep`` like the whole lists they replace, and logs why the server last dropped it."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List

import pytest
from agent_gateway import Gateway
from test_transport import Connected, tracepoint

from peephole import protocol

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway(probes=[tracepoint("a"), tracepoint("b")]) as gw:
        yield gw


def installed(agent: Connected) -> List[str]:
    return sorted(s.probe_id for s in agent.agent.statuses())


def delta(**fields: Any) -> Dict[str, Any]:
    return {"type": "probes_delta", "set": [], "remove": [], **fields}


def test_deltas_install_update_and_remove(gateway: Gateway) -> None:
    agent = Connected(gateway.url)
    try:
        gateway.wait_for(lambda: installed(agent) == ["a", "b"])
        session = gateway.sessions[0]
        assert protocol.PROBE_DELTA in session.hello["features"]
        session.send(delta(set=[tracepoint("c")], remove=["a"]))
        gateway.wait_for(lambda: installed(agent) == ["b", "c"])
        session.send(delta(set=[tracepoint("c", hit_limit=3, version=2)]))
        gateway.wait_for(lambda: agent.agent.status("c").version == 2)  # type: ignore[union-attr]
        session.send(delta(set=[tracepoint("d")], keep=["c"]))  # a new connection's first
        gateway.wait_for(lambda: installed(agent) == ["c", "d"])
        session.send(delta(set=[{"id": "bad", "kind": "nope"}]))
        invalid = gateway.wait_for(
            lambda: [
                p for m in session.of_type("status") for p in m["probes"] if p["probe_id"] == "bad"
            ]
        )
        assert invalid[0]["state"] == protocol.ERROR
        assert installed(agent) == ["c", "d"]
    finally:
        agent.stop()


REASON = "2026-12-03 08:00:00 UTC: did not read for 10 s (send deadline)"


class RememberingGateway(Gateway):
    """A gateway whose ``welcome`` says the server last dropped this agent for ``REASON``."""

    def _handle(self, ws: Any) -> None:
        send = ws.send

        def send_with_reason(text: str) -> None:
            message = protocol.decode(text)
            if message["type"] == "welcome":
                text = protocol.encode({**message, "last_disconnect": REASON})
            send(text)

        ws.send = send_with_reason
        super()._handle(ws)


def test_the_reason_for_the_last_disconnect_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RememberingGateway() as gateway, caplog.at_level(logging.WARNING, logger="peephole"):
        agent = Connected(gateway.url)
        try:
            gateway.wait_for(lambda: gateway.sessions)
            gateway.sessions[0].ws.close()  # the agent reconnects: the same reason again
            gateway.wait_for(lambda: len(gateway.live()) == 1 and len(gateway.sessions) == 2)
            assert agent.transport.wait_connected(10)
        finally:
            agent.stop()
    told = [r for r in caplog.records if "the server had disconnected this agent" in r.message]
    assert len(told) == 1 and REASON in told[0].getMessage()
