"""Forked children (os.fork, multiprocessing with fork) become instances of their own: a new
instance id, new threads, a new connection, the same probes; the parent carries on
undisturbed (Python 3.9+, POSIX)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any, Dict, Iterator, List

import pytest
from agent_gateway import Gateway, Session

from peephole import protocol
from peephole.agent.launch import ManagedAgent, start_agent

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def price(amount: int) -> int:
    taxed = amount * 2
    return taxed


PRICE_LINE = price.__code__.co_firstlineno + 2
PROBE = {
    "id": "fork",
    "kind": "tracepoint",
    "file": "agent/" + os.path.basename(__file__),
    "line": PRICE_LINE,
    "hit_limit": 100,
}


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway(probes=[PROBE]) as gw:
        yield gw


@pytest.fixture
def agent(gateway: Gateway) -> Iterator[ManagedAgent]:
    started = start_agent(
        service="forks",
        server=gateway.url,
        key="test-key",
        wait=10,
        capture_exceptions=False,
        snapshot_rate=100.0,
        cpu_budget=1.0,
    )
    assert isinstance(started, ManagedAgent)
    gateway.wait_for(lambda: _active(started))
    yield started
    started.stop()


def _active(agent: ManagedAgent) -> bool:
    return any(s.state == protocol.ACTIVE for s in agent.statuses())


def child_work(amount: int) -> None:
    """In a child: wait for its own connection and probes, hit the line, deliver, exit."""
    from peephole.agent import launch

    code = 1
    try:
        [agent] = list(launch._running())
        assert agent.transport is not None and agent.transport.wait_connected(20)
        deadline = time.monotonic() + 20
        while not any(s.captures for s in agent.statuses()):
            assert time.monotonic() < deadline
            price(amount)
            time.sleep(0.02)
        code = 0 if agent.flush(10) else 2
    finally:
        sys.stdout.flush()
        os._exit(code)


def snapshots_by_instance(gateway: Gateway) -> Dict[str, List[Dict[str, Any]]]:
    found: Dict[str, List[Dict[str, Any]]] = {}
    for event in list(gateway.events):
        if event["type"] == protocol.SNAPSHOT:
            found.setdefault(event["instance_id"], []).append(event)
    return found


def session_of(gateway: Gateway, pid: int) -> Session:
    found: List[Session] = gateway.wait_for(
        lambda: [s for s in gateway.sessions if s.instance["pid"] == pid]
    )
    return found[0]


def test_a_forked_child_is_an_instance_of_its_own(gateway: Gateway, agent: ManagedAgent) -> None:
    parent_id = agent.config.instance_id
    pid = os.fork()
    if pid == 0:
        child_work(7)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    child = session_of(gateway, pid)
    child_id = child.instance["instance_id"]
    assert child_id != parent_id
    assert child.instance["service"] == "forks"
    assert child.instance["started_at"] > gateway.sessions[0].instance["started_at"]
    [snapshot] = snapshots_by_instance(gateway)[child_id]
    assert snapshot["frames"][0]["locals"]["taxed"]["v"] == 14
    # The parent's connection survived the child closing its copy of the socket.
    assert agent.config.instance_id == parent_id
    assert agent.transport is not None and agent.transport.connected
    price(5)
    assert agent.flush(10)
    parent_snapshots = snapshots_by_instance(gateway)[parent_id]
    assert parent_snapshots[-1]["frames"][0]["locals"]["taxed"]["v"] == 10
    assert not gateway.sessions[0].closed.is_set()


def test_multiprocessing_fork_workers_each_register_and_capture(
    gateway: Gateway, agent: ManagedAgent
) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=child_work, args=(n,)) for n in (1, 2, 3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    ids = {session_of(gateway, w.pid).instance["instance_id"] for w in workers}  # type: ignore[arg-type]
    assert len(ids) == 3 and agent.config.instance_id not in ids
    captured = snapshots_by_instance(gateway)
    assert ids <= set(captured)
    values = sorted(e["frames"][0]["locals"]["taxed"]["v"] for i in ids for e in captured[i][:1])
    assert values == [2, 4, 6]


def test_a_fork_right_after_start_gets_a_working_agent(gateway: Gateway) -> None:
    """The fork may land while the transport thread is still importing websockets."""
    agent = start_agent(
        service="early",
        server=gateway.url,
        key="test-key",
        capture_exceptions=False,
        snapshot_rate=100.0,
        cpu_budget=1.0,
    )
    try:
        pid = os.fork()
        if pid == 0:
            child_work(4)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        child = session_of(gateway, pid)
        assert child.instance["instance_id"] != agent.config.instance_id
    finally:
        agent.stop()


def test_a_grandchild_gets_yet_another_instance(gateway: Gateway, agent: ManagedAgent) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            grandchild = os.fork()
            if grandchild == 0:
                child_work(3)
            os.write(write, str(grandchild).encode())
            _, status = os.waitpid(grandchild, 0)
            code = os.WEXITSTATUS(status)
        finally:
            os._exit(code)
    os.close(write)
    grandchild_pid = int(os.read(read, 64).decode())
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    session = session_of(gateway, grandchild_pid)
    ids = {s.instance["instance_id"] for s in gateway.sessions}
    assert session.instance["instance_id"] in snapshots_by_instance(gateway)
    assert agent.config.instance_id in ids and len(ids) >= 2
