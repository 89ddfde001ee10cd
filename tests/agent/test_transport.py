"""The agent's transport against a real WebSocket gateway on a loopback port (Python 3.9+)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
from agent_gateway import Gateway
from hypothesis import given
from hypothesis import strategies as st

from peephole import __version__, protocol
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.delivery import encoding
from peephole.agent.delivery.transport import Transport, agent_url, backoff_delay, runtime_name
from waiting import wait_until

pytestmark = pytest.mark.timeout(60)

FAST = {"backoff_initial": 0.02, "backoff_max": 0.2}


def checkout(total: float) -> float:
    discount = total * 0.1
    return total - discount


CHECKOUT_LINE = checkout.__code__.co_firstlineno + 2  # the return: both locals are set
THIS_FILE = "agent/" + os.path.basename(__file__)


def tracepoint(probe_id: str = "p1", **fields: Any) -> Dict[str, Any]:
    return {
        "id": probe_id,
        "kind": "tracepoint",
        "file": THIS_FILE,
        "line": CHECKOUT_LINE,
        **fields,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Connected:
    """An Agent wired to a Transport, as launch does it, with test-friendly timings."""

    def __init__(
        self,
        server: str,
        key: Optional[str] = "test-key",
        buffer_bytes: int = 1 << 20,
        **transport: Any,
    ) -> None:
        self.config = AgentConfig(
            service="shop",
            version="1.2",
            environment="test",
            tags={"team": "pay"},
            server=server,
            key=key,
            capture_exceptions=False,
            buffer_bytes=buffer_bytes,
            # rates and the CPU budget must not get in the way here
            snapshot_rate=1000.0,
            snapshot_process_rate=1000.0,
            cpu_budget=1.0,
        )
        options = {**FAST, **transport}
        self.transport = Transport(self.config, **options)
        self.agent = Agent(self.config, sink=self.transport.deliver)
        self.agent.on_status = self.transport.report_status
        self.agent.start()
        self.transport.start(self.agent)

    def stop(self) -> None:
        self.agent.stop()
        self.transport.stop()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as gw:
        yield gw


@pytest.fixture
def connected(gateway: Gateway) -> Iterator[Connected]:
    agent = Connected(gateway.url)
    assert agent.transport.wait_connected(10)
    yield agent
    agent.stop()


def log_event(message: str = "hello") -> Dict[str, Any]:
    return protocol.new_event(
        protocol.LOG, probe_id="p0", file="x.py", line=1, level="info", message=message, errors=[]
    )


# --- addresses and timing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("http://127.0.0.1:7777", "ws://127.0.0.1:7777/agent/v1/ws"),
        ("http://127.0.0.1:7777/", "ws://127.0.0.1:7777/agent/v1/ws"),
        ("https://debug.example.com", "wss://debug.example.com/agent/v1/ws"),
        ("HTTPS://debug.example.com/peephole/", "wss://debug.example.com/peephole/agent/v1/ws"),
        ("127.0.0.1:7777", "ws://127.0.0.1:7777/agent/v1/ws"),
        ("ws://10.0.0.1:9000", "ws://10.0.0.1:9000/agent/v1/ws"),
        ("wss://gw.example.com/custom/path", "wss://gw.example.com/custom/path"),
        ("http://h:1/agent/v1/ws", "ws://h:1/agent/v1/ws"),
    ],
)
def test_agent_url(server: str, url: str) -> None:
    assert agent_url(server) == url


@pytest.mark.parametrize("server", ["ftp://host", "http://", "", "gopher://host:70"])
def test_agent_url_refuses_what_is_not_a_server(server: str) -> None:
    with pytest.raises(ValueError):
        agent_url(server)


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_is_jittered_under_a_doubling_ceiling(attempt: int) -> None:
    delay = backoff_delay(attempt, 0.5, 30.0)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** min(attempt, 64))


def test_backoff_spreads_delays() -> None:
    delays = {round(backoff_delay(10), 3) for _ in range(50)}
    assert len(delays) > 10  # full jitter, not a fixed schedule
    assert max(delays) > 15  # and the ceiling reached 30 s


# --- hello, welcome, probes ------------------------------------------------------------------


def test_hello_describes_the_process(gateway: Gateway, connected: Connected) -> None:
    hello = gateway.sessions[0].hello
    assert hello["type"] == "hello"
    assert hello["key"] == "test-key"
    info = protocol.InstanceInfo.from_dict(hello["instance"])
    assert info.instance_id == connected.config.instance_id
    assert (info.service, info.version, info.environment) == ("shop", "1.2", "test")
    assert info.tags == {"team": "pay"}
    assert info.pid == os.getpid()
    assert info.host == socket.gethostname()
    assert info.runtime == runtime_name()
    assert info.runtime.startswith("CPython 3.")
    assert info.agent_version == __version__
    assert time.time() - 60 < info.started_at <= time.time()


def test_probes_are_installed_and_their_snapshots_acknowledged(
    gateway: Gateway, connected: Connected
) -> None:
    gateway.push_probes([tracepoint()])
    session = gateway.sessions[0]
    gateway.wait_for(
        lambda: any(
            s["probe_id"] == "p1" and s["state"] == protocol.ACTIVE
            for m in session.of_type("status")
            for s in m["probes"]
        )
    )
    checkout(120.0)
    assert connected.agent.flush(10)
    [snapshot] = [e for e in gateway.events if e["type"] == protocol.SNAPSHOT]
    assert snapshot["probe_id"] == "p1"
    assert snapshot["instance_id"] == connected.config.instance_id
    seqs = [m["seq"] for m in session.of_type("events")]
    assert seqs == sorted(set(seqs))


def test_probes_pushed_in_the_welcome_sequence_are_installed() -> None:
    with Gateway(probes=[tracepoint("early")]) as gateway:
        agent = Connected(gateway.url)
        try:
            gateway.wait_for(lambda: agent.agent.statuses())
            assert [s.probe_id for s in agent.agent.statuses()] == ["early"]
        finally:
            agent.stop()


def test_a_probe_missing_from_the_list_is_removed(gateway: Gateway, connected: Connected) -> None:
    gateway.push_probes([tracepoint("a"), tracepoint("b")])
    gateway.wait_for(lambda: len(connected.agent.statuses()) == 2)
    gateway.push_probes([tracepoint("b")])
    gateway.wait_for(lambda: [s.probe_id for s in connected.agent.statuses()] == ["b"])


def test_an_invalid_probe_gets_an_error_status(gateway: Gateway, connected: Connected) -> None:
    gateway.push_probes(
        [{"id": "bad", "kind": "watchpoint", "file": "x.py", "line": 1}, tracepoint("good")]
    )
    session = gateway.sessions[0]
    statuses = gateway.wait_for(
        lambda: [
            s for m in session.of_type("status") for s in m["probes"] if s["probe_id"] == "bad"
        ]
    )
    assert statuses[0]["state"] == protocol.ERROR
    assert "watchpoint" in statuses[0]["message"]
    gateway.wait_for(lambda: [s.probe_id for s in connected.agent.statuses()] == ["good"])


def test_policy_from_welcome_and_later_pushes_is_applied() -> None:
    with Gateway(policy={"redact_names": ["discount"]}) as gateway:
        agent = Connected(gateway.url)
        try:
            assert agent.transport.wait_connected(10)
            gateway.push_probes([tracepoint(hit_limit=1000)])
            gateway.wait_for(
                lambda: (
                    agent.agent.statuses() and agent.agent.statuses()[0].state == protocol.ACTIVE
                )
            )
            checkout(10.0)
            assert agent.agent.flush(10)
            local = gateway.events[-1]["frames"][0]["locals"]["discount"]
            assert local.get("cut") == "redacted"
            gateway.sessions[0].send({"type": "policy", "config": {}})
            gateway.wait_for(lambda: _discount_visible(agent, gateway))
        finally:
            agent.stop()


def _discount_visible(agent: Connected, gateway: Gateway) -> bool:
    count = len(gateway.events)
    checkout(10.0)
    agent.agent.flush(5)
    new = gateway.events[count:]
    return bool(new) and new[-1]["frames"][0]["locals"]["discount"].get("cut") != "redacted"


def test_source_and_file_requests_are_answered(gateway: Gateway, connected: Connected) -> None:
    session = gateway.sessions[0]
    session.send({"type": "get_source", "request_id": "r1", "path": THIS_FILE})
    session.send({"type": "get_source", "request_id": "r2", "path": "no/such/file.py"})
    session.send({"type": "list_files", "request_id": "r3"})
    answers = gateway.wait_for(
        lambda: (
            len(session.of_type("source")) == 2 and session.of_type("files") and session.messages
        )
    )
    assert answers
    by_id = {m["request_id"]: m for m in session.of_type("source")}
    assert "def checkout(total: float)" in by_id["r1"]["text"]
    assert CHECKOUT_LINE in by_id["r1"]["lines"]
    assert "error" in by_id["r2"]
    [files] = session.of_type("files")
    assert files["request_id"] == "r3"
    assert isinstance(files["files"], list)


def test_heartbeats_are_sent(gateway: Gateway) -> None:
    agent = Connected(gateway.url, heartbeat=0.05)
    try:
        gateway.wait_for(
            lambda: gateway.sessions and len(gateway.sessions[0].of_type("heartbeat")) >= 3
        )
    finally:
        agent.stop()


def test_messages_from_a_newer_server_are_ignored(gateway: Gateway, connected: Connected) -> None:
    session = gateway.sessions[0]
    session.ws.send("not json")
    session.send({"type": "something_new", "x": 1})
    connected.agent.emit(log_event())
    assert connected.agent.flush(10)
    assert len(gateway.sessions) == 1 and not session.closed.is_set()


# --- delivery, buffering, reconnects ---------------------------------------------------------


def test_events_wait_for_the_server_then_arrive() -> None:
    port = free_port()
    agent = Connected(f"http://127.0.0.1:{port}")
    try:
        for n in range(5):
            agent.agent.emit(log_event(f"offline {n}"))
        wait_until(lambda: agent.transport.problem, 10, "no connection attempt failed")
        assert not agent.transport.connected
        with Gateway(port=port) as gateway:
            assert agent.agent.flush(15)
            messages = [e["message"] for e in gateway.events]
            assert messages == [f"offline {n}" for n in range(5)]
    finally:
        agent.stop()


def test_reconnects_after_the_server_goes_away(gateway: Gateway) -> None:
    agent = Connected(gateway.url)
    try:
        assert agent.transport.wait_connected(10)
        port = gateway.port
        gateway.close()
        gateway.wait_for(lambda: not agent.transport.connected)
        agent.agent.emit(log_event("while away"))
        with Gateway(port=port) as second:
            assert agent.agent.flush(15)
            assert [e["message"] for e in second.events] == ["while away"]
            hello = second.sessions[0].hello
            assert hello["instance"]["instance_id"] == agent.config.instance_id
    finally:
        agent.stop()


def test_unacknowledged_events_stay_buffered_until_acknowledged() -> None:
    with Gateway(ack=False) as gateway:
        agent = Connected(gateway.url, ack_timeout=0.2)
        try:
            agent.agent.emit(log_event("keep me"))
            session = gateway.wait_for(lambda: gateway.live())[0]
            gateway.wait_for(lambda: len(session.of_type("events")) >= 2)  # offered again
            assert not agent.agent.flush(0.1)
            gateway.ack = True
            assert agent.agent.flush(15)
            assert [e["message"] for e in gateway.events] == ["keep me"]
        finally:
            agent.stop()


def test_drops_are_reported_once() -> None:
    port = free_port()
    agent = Connected(f"http://127.0.0.1:{port}", buffer_bytes=4000)
    try:
        for n in range(100):
            agent.agent.emit(log_event(f"event {n}"))
        dropped = agent.agent.dropped
        assert dropped > 50
        with Gateway(port=port) as gateway:
            assert agent.agent.flush(15)
            agent.agent.emit(log_event("after"))
            assert agent.agent.flush(15)
            assert gateway.dropped == dropped
            assert gateway.events[-1]["message"] == "after"
    finally:
        agent.stop()


def test_an_event_larger_than_a_message_is_dropped_and_counted(
    gateway: Gateway, connected: Connected
) -> None:
    huge = log_event("x" * protocol.MAX_MESSAGE_BYTES)
    small = [log_event(f"small {n}") for n in range(3)]
    assert connected.transport.deliver([small[0], huge, *small[1:]])
    assert [e["message"] for e in gateway.events] == [f"small {n}" for n in range(3)]
    assert gateway.dropped == 1
    assert all(
        len(protocol.encode(m)) <= protocol.MAX_MESSAGE_BYTES
        for m in gateway.sessions[0].of_type("events")
    )


def test_a_batch_over_the_message_size_is_split(gateway: Gateway, connected: Connected) -> None:
    events = [log_event(f"{n}:" + "y" * 600_000) for n in range(12)]
    assert connected.transport.deliver(events)
    assert [e["message"].split(":")[0] for e in gateway.events] == [str(n) for n in range(12)]
    assert len(gateway.sessions[0].of_type("events")) > 1


def test_delivery_without_a_connection_returns_false_quickly() -> None:
    agent = Connected(f"http://127.0.0.1:{free_port()}")
    try:
        started = time.monotonic()
        assert agent.transport.deliver([log_event()]) is False
        # waits 1 s for a connection by design; the bound only catches a wait for an attempt
        # to open one (OPEN_TIMEOUT, 10 s)
        assert time.monotonic() - started < 6
    finally:
        agent.stop()


# --- rejection, logging, stopping -----------------------------------------------------------


def test_a_rejected_key_is_logged_once_and_retried(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="peephole")
    agent = Connected(gateway.url, key="wrong", backoff_max=0.1)
    try:
        gateway.wait_for(lambda: len(gateway.rejected) >= 3)
        warnings = [
            r for r in caplog.records if r.name == "peephole" and r.levelno == logging.WARNING
        ]
        assert len(warnings) == 1
        assert "unknown agent key" in warnings[0].getMessage()
        assert not agent.transport.connected
        gateway.key = "wrong"
        assert agent.transport.wait_connected(10)
        assert any(
            "connected" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
        )
    finally:
        agent.stop()


def test_an_unreachable_server_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="peephole")
    agent = Connected(f"http://127.0.0.1:{free_port()}", backoff_max=0.05)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(_records(caplog, "cannot reach")) < 4:
            time.sleep(0.02)
        attempts = _records(caplog, "cannot reach")
        assert len(attempts) >= 4
        assert [r.levelno for r in attempts].count(logging.WARNING) == 1
    finally:
        agent.stop()


def _records(caplog: pytest.LogCaptureFixture, text: str) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "peephole" and text in r.getMessage()]


def test_the_peephole_logger_prints_nothing_by_default() -> None:
    logger = logging.getLogger("peephole")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


def test_stop_closes_the_connection_and_ends_the_thread(gateway: Gateway) -> None:
    before = set(threading.enumerate())
    agent = Connected(gateway.url)
    assert agent.transport.wait_connected(10)
    started = time.monotonic()
    agent.transport.stop()
    assert time.monotonic() - started < 6  # only catches waiting for a timeout (10 s)
    gateway.wait_for(lambda: gateway.sessions[0].closed.is_set(), timeout=2)
    assert not agent.transport.connected
    assert not [
        t for t in threading.enumerate() if t.name == "peephole-transport" and t not in before
    ]
    agent.agent.stop()


def test_stop_while_the_server_is_unreachable_is_quick() -> None:
    before = set(threading.enumerate())
    agent = Connected(f"http://127.0.0.1:{free_port()}", backoff_max=30.0, backoff_initial=30.0)
    wait_until(lambda: agent.transport.problem, 10, "no connection attempt failed")
    started = time.monotonic()  # the transport now waits up to 30 s before it tries again
    agent.transport.stop()
    assert time.monotonic() - started < 10  # only catches waiting the 30 s back-off out
    assert not [
        t for t in threading.enumerate() if t.name == "peephole-transport" and t not in before
    ]
    agent.agent.stop()


# --- encoding ------------------------------------------------------------------------------


class _CountsNameReads(type):
    """A metaclass counting reads of its classes' ``__name__``: the encoders' fallback reads
    it once each time it encodes an instance, so it counts the encodings of an event."""

    reads = 0

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        _CountsNameReads.reads += 1
        return "Marker"


class Marker(metaclass=_CountsNameReads):
    pass


def test_each_event_is_encoded_once(gateway: Gateway, connected: Connected) -> None:
    _CountsNameReads.reads = 0
    assert connected.transport.deliver([{**log_event("marked"), "extra": Marker()}])
    assert gateway.events[0]["extra"] == "<Marker>"
    assert _CountsNameReads.reads == 1


def test_encoding_a_batch_lets_a_waiting_thread_run() -> None:
    """With a switch interval longer than the test, another thread gets the GIL only when
    the encoding thread releases it: it must do so between slices of a big batch."""
    transport = Transport(AgentConfig(service="shop", server="http://127.0.0.1:1"))
    events = [log_event(f"{n}:" + "z" * 4000) for n in range(400)]
    ticks: List[int] = []
    stop = threading.Event()

    def other_thread() -> None:
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.0001)

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=other_thread)
    sys.setswitchinterval(30.0)
    try:
        thread.start()
        ticks.clear()
        chunks = transport._chunks(events)
        during = len(ticks)
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        thread.join(10)
    assert sum(len(chunk) for chunk in chunks) == len(events)
    assert during > 0


@pytest.mark.parametrize(
    "event",
    [
        {"type": "log", "text": "naïve ☃ \U0001f600", "n": 2**70, "f": 1e16, "neg": -0.5},
        {"type": "log", "lone": "\ud800", "nested": [{"a": [1, None, True]}], "obj": Marker()},
        {"type": "log", "tuple": (1, "two"), "empty": {}, "big": -(2**64)},
        {"type": "log", "keys": {1: "int key", None: "none key"}, "deep": [[[[{}]]]]},
    ],
)
def test_every_encoder_writes_what_protocol_encode_writes(event: Dict[str, Any]) -> None:
    expected = json.loads(protocol.encode(event))
    for dumps in (encoding.encoder(), encoding.stdlib_dumps):
        assert json.loads(dumps(event)) == expected
    message = json.loads(encoding.events_message(7, [encoding.stdlib_dumps(event)], 2))
    assert message == {"type": "events", "seq": 7, "events": [expected], "dropped": 2}


def test_orjson_is_used_when_installed() -> None:
    """The agent-test environments install the ``fast`` extra: the fast path is tested."""
    assert encoding.library() == "orjson"
