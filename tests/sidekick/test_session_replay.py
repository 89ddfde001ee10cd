"""Recorded agent traffic replayed through one Sidekick session (no socket, no database):
what it sends the agent, what it stores, the statuses it reports."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import pytest

from peephole import protocol
from peephole.server.metrics import Metrics
from peephole.server.settings import ServerSettings
from peephole.server.sidekick import identity
from peephole.server.sidekick.events import bare_id
from peephole.server.sidekick.session import STATUS_GRACE_SECONDS, SidekickConnection
from peephole.server.sidekick.status import error_text
from sidekick.fixture_frames import entries, fixture_files, runtime_of


class FakeBroker:
    """What a session uses of the broker, recorded."""

    def __init__(self) -> None:
        self.settings = ServerSettings(data_dir="/nonexistent")
        self.metrics = Metrics()
        self.stored: list[dict[str, Any]] = []
        self.reports: list[protocol.ProbeStatus] = []

    async def ingest(self, _: Any, events: list[dict[str, Any]], dropped: int) -> None:
        self.stored.extend(events)

    async def statuses(self, _: Any, statuses: list[protocol.ProbeStatus]) -> None:
        self.reports.extend(statuses)

    def last(self, probe_id: str) -> Optional[protocol.ProbeStatus]:
        found = [r for r in self.reports if r.probe_id == probe_id]
        return found[-1] if found else None


def session(runtime: str = "python") -> tuple[SidekickConnection, FakeBroker]:
    broker = FakeBroker()
    headers = {identity.INSTANCE_ID: "demo:1@vm", "x-sidekick-app-runtime": runtime}
    info = identity.instance_info(headers, 0.0)
    connection = SidekickConnection(None, info, broker, runtime, "demo:1@vm")  # type: ignore[arg-type]
    return connection, broker


def outbox(connection: SidekickConnection) -> list[dict[str, Any]]:
    """What the session queued for the agent (taken out)."""
    sent = []
    while (text := connection._next()) is not None:
        sent.append(json.loads(text))
    return sent


def want(connection: SidekickConnection, *specs: dict[str, Any]) -> None:
    """The hub's probe list for this instance, as ``want_probes`` gives it."""
    connection._wanted = {
        s["id"]: protocol.encode(protocol.ProbeSpec.from_dict(s).to_dict()) for s in specs
    }
    connection.ever_sent.update(s["id"] for s in specs)


def probe(probe_id: str, kind: str, file: str, line: int, **fields: Any) -> dict[str, Any]:
    spec = {"id": probe_id, "kind": kind, "file": file, "line": line, **fields}
    if kind == "logpoint":
        spec.setdefault("template", "cart {cart.id}")
    return spec


def distinct_ids(frame: dict[str, Any]) -> dict[str, Any]:
    """The recording's broker gave a tracepoint and a logpoint the same id; peephole's differ."""
    out = dict(frame)
    for key, prefix in (("tracePointId", "T"), ("logPointId", "L")):
        if isinstance(out.get(key), str):
            out[key] = f"{prefix}|{bare_id(out[key])}"
    return out


async def test_probes_wait_for_the_filter_answers() -> None:
    connection, _ = session()
    want(connection, probe("p1", "tracepoint", "shop.py", 13))
    assert outbox(connection) == []  # a filter answer after a put would wipe it
    await connection.handle({"type": "Request", "name": "FilterTracePointsRequest", "id": "a"})
    await connection.handle({"type": "Request", "name": "FilterLogPointsRequest", "id": "b"})
    sent = outbox(connection)
    assert [f["name"] for f in sent] == [
        "FilterTracePointsResponse",
        "FilterLogPointsResponse",
        "PutTracePointRequest",
    ]
    assert sent[0]["tracePoints"] == [] and sent[1]["logPoints"] == []
    assert sent[0]["requestId"] == "a" and sent[0]["applicationInstanceId"] == "demo:1@vm"
    assert sent[2]["fileName"] == "shop.py?ref=" and sent[2]["tracePointId"] == "p1"


async def test_an_agent_that_never_asks_gets_its_probes_after_a_deadline() -> None:
    connection, _ = session()
    connection.start_writer = lambda: asyncio.ensure_future(asyncio.sleep(0))  # type: ignore[method-assign]
    want(connection, probe("p1", "tracepoint", "shop.py", 13))
    connection.start()
    deadline = asyncio.get_running_loop().time() + 10
    while not connection._ready:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert [f["name"] for f in outbox(connection)] == ["PutTracePointRequest"]


async def ready(connection: SidekickConnection) -> None:
    for name in ("FilterTracePointsRequest", "FilterLogPointsRequest"):
        await connection.handle({"type": "Request", "name": name, "id": name})
    outbox(connection)


async def test_later_lists_are_diffed_into_requests() -> None:
    connection, broker = session("node")
    await ready(connection)
    want(connection, probe("p1", "tracepoint", "app.js", 11), probe("p2", "logpoint", "app.js", 12))
    assert [f["name"] for f in outbox(connection)] == ["PutTracePointRequest", "PutLogPointRequest"]
    want(
        connection,
        probe("p1", "tracepoint", "app.js", 11, condition="total > 1", version=2),
        probe("p2", "logpoint", "app.js", 14, version=2),
    )
    sent = outbox(connection)
    assert [f["name"] for f in sent] == [
        "UpdateTracePointRequest",
        "RemoveLogPointRequest",
        "PutLogPointRequest",
    ]
    assert sent[0]["conditionExpression"] == "total > 1" and sent[2]["lineNo"] == 14
    want(connection, probe("p2", "logpoint", "app.js", 14, version=2))
    assert [(f["name"], f["tracePointId"]) for f in outbox(connection)] == [
        ("RemoveTracePointRequest", "p1")
    ]
    # a second pair of filter requests (an attach) wipes the agent's probes: all put again
    await ready_again(connection)
    assert broker.reports == []


async def ready_again(connection: SidekickConnection) -> None:
    for name in ("FilterTracePointsRequest", "FilterLogPointsRequest"):
        await connection.handle({"type": "Request", "name": name, "id": name})
    names = [f["name"] for f in outbox(connection)]
    assert names[-1] == "PutLogPointRequest" and names.count("PutLogPointRequest") == 1


async def test_an_untranslatable_probe_is_an_error_status_and_is_not_sent() -> None:
    connection, broker = session("python")
    await ready(connection)
    want(connection, probe("p1", "logpoint", "shop.py", 13, template="{total:.2f}"))
    assert outbox(connection) == []
    await asyncio.gather(*connection._tasks)
    report = broker.last("p1")
    assert report is not None and report.state == protocol.ERROR
    assert report.message is not None and "dotted paths only" in report.message


async def test_get_config_answer_and_policy_changes() -> None:
    connection, _ = session("python")
    await connection.handle({"type": "Request", "name": "GetConfigRequest", "id": "c"})
    connection.send({"type": "policy", "config": {"capture_exceptions": False}})
    answer, update = outbox(connection)
    assert answer["name"] == "GetConfigResponse" and answer["requestId"] == "c"
    assert set(answer["config"]) >= {
        "maxFrames",
        "maxExpandFrames",
        "maxProperties",
        "maxParseDepth",
        "errorCollectionEnable",
        "errorCollectionEnableCaptureFrame",
    }
    assert update["name"] == "UpdateConfigRequest"
    assert update["config"]["errorCollectionEnable"] is False


async def test_source_requests_are_answered_not_available() -> None:
    connection, _ = session()
    answer = await connection.request({"type": "get_source", "path": "shop.py"}, 1.0)
    assert answer["error"] == "not available for Sidekick agents"
    files = await connection.request({"type": "list_files"}, 1.0)
    assert files["files"] == []


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
async def test_every_recorded_frame_replays(path: Path) -> None:
    runtime = runtime_of(path.name)
    connection, broker = session(runtime)
    await ready(connection)
    file = "app.js" if runtime == "node" else "shop.py"
    lines = {
        f.get("lineNo")
        for e in entries(path)
        for f in [e["frame"]]
        if isinstance(f.get("lineNo"), int)
    }
    recorded_ids: set[str] = {
        distinct_ids(e["frame"])[k]
        for e in entries(path)
        for k in ("tracePointId", "logPointId")
        if e["dir"] == "agent" and e["frame"].get(k)
    }
    specs = []
    for probe_id in sorted(recorded_ids):
        kind = "tracepoint" if probe_id.startswith("T|") else "logpoint"
        line = int(probe_id.split("::")[1]) if "::" in probe_id else min(lines)
        specs.append(probe(probe_id, kind, file, line))
    for line in sorted(lines):  # the failing puts (line 8) are probes too
        specs.append(probe(f"T|line{line}", "tracepoint", file, line))
        specs.append(probe(f"L|line{line}", "logpoint", file, line))
    want(connection, *specs)
    outbox(connection)
    agent_frames = [distinct_ids(e["frame"]) for e in entries(path) if e["dir"] == "agent"]
    for frame in agent_frames:
        await connection.handle(frame)
    names = [f["name"] for f in agent_frames]
    expected = names.count("TracePointSnapshotEvent") + names.count("LogPointEvent")
    expected += names.count("ErrorStackSnapshotEvent")
    assert len(broker.stored) == expected
    assert broker.metrics.events_refused_total == 0
    for name, kind in (("PutTracePointFailedEvent", "T"), ("PutLogPointFailedEvent", "L")):
        for frame in (f for f in agent_frames if f["name"] == name):
            report = broker.last(f"{kind}|line{frame['lineNo']}")
            assert report is not None and report.state == protocol.ERROR
            assert report.message == error_text(frame)


def test_an_agent_heard_from_within_two_status_periods_stays_fresh() -> None:
    connection, _ = session()
    connection.last_frame = 1000.0  # its last status, 60 s periods
    connection.keep_fresh(1000.0 + 119)
    assert connection.last_message == 1119.0  # not stale at peephole's 60 s
    connection.keep_fresh(1000.0 + STATUS_GRACE_SECONDS + 1)
    assert connection.last_message == 1119.0  # two statuses missed: no longer kept fresh


def listing(*probe_ids: str) -> dict[str, Any]:
    trace_points = [{"id": i} for i in probe_ids]
    application = {"tracePoints": trace_points, "logPoints": []}
    return {"type": "Event", "name": "ApplicationStatusEvent", "application": application}


async def test_a_probe_is_active_once_listed_and_an_error_once_dropped() -> None:
    connection, broker = session()
    await ready(connection)
    want(connection, probe("p1", "tracepoint", "shop.py", 13))
    outbox(connection)
    await connection.handle(listing("p1"))
    assert broker.last("p1").state == protocol.ACTIVE  # type: ignore[union-attr]
    for name in ("FilterTracePointsRequest", "FilterLogPointsRequest"):  # an attach
        await connection.handle({"type": "Request", "name": name, "id": name})
    await connection.handle(listing())  # before the writer put p1 again: not an error
    assert broker.last("p1").state == protocol.ACTIVE  # type: ignore[union-attr]
    assert [f["name"] for f in outbox(connection)][-1] == "PutTracePointRequest"
    await connection.handle(listing("p1"))
    await connection.handle(listing())  # gone without being removed: the agent dropped it
    report = broker.last("p1")
    assert report is not None and report.state == protocol.ERROR
    assert report.message is not None and "no longer has this probe" in report.message


async def test_an_edit_of_a_probe_the_agent_failed_puts_it_again() -> None:
    connection, broker = session("python")
    await ready(connection)
    want(connection, probe("p1", "tracepoint", "shop.py", 8))
    outbox(connection)
    failure = {"errorCode": 1004, "errorMessage": "Line 8 is not available in /a.py. Try lines 7"}
    event = {"type": "Event", "name": "PutTracePointFailedEvent", "fileName": "shop.py?ref="}
    await connection.handle({**event, "lineNo": 8, **failure})
    assert broker.last("p1").state == protocol.ERROR  # type: ignore[union-attr]
    # Python keeps a failed probe in its list: an update would leave it failed, listed "active"
    want(connection, probe("p1", "tracepoint", "shop.py", 8, condition="x > 1", version=2))
    assert [f["name"] for f in outbox(connection)] == [
        "RemoveTracePointRequest",
        "PutTracePointRequest",
    ]


async def test_a_success_answer_after_the_install_failure_leaves_the_error() -> None:
    # Python's order for a line it cannot take (fixtures/python-0.1.2.jsonl, the last put):
    # the failure event, a status list naming the probe, then a success answer to the put
    connection, broker = session("python")
    await ready(connection)
    want(connection, probe("p1", "tracepoint", "shop.py", 8))
    (put,) = [f for f in outbox(connection) if f["name"] == "PutTracePointRequest"]
    failure = {"errorCode": 1004, "errorMessage": "Line 8 is not available in /a.py. Try lines 7"}
    event = {"type": "Event", "name": "PutTracePointFailedEvent", "fileName": "shop.py?ref="}
    await connection.handle({**event, "lineNo": 8, **failure})
    await connection.handle(listing("p1"))
    answer = {"type": "Response", "name": "PutTracePointResponse", "requestId": put["id"]}
    await connection.handle({**answer, "erroneous": False, "errorCode": None})
    report = broker.last("p1")
    assert report is not None and report.state == protocol.ERROR
    assert report.message == "line 8 is not available; try 7"


async def test_repeated_filter_pairs_keep_one_pending_request_per_probe() -> None:
    connection, _ = session()
    want(connection, probe("p1", "tracepoint", "shop.py", 13), probe("p2", "logpoint", "a.py", 3))
    for _ in range(50):  # an agent that asks again and again, never answering the puts
        await ready(connection)
    assert sorted(connection._requests.values()) == ["p1", "p2"]


async def test_an_event_of_the_other_kind_is_not_stored_on_a_probe() -> None:
    connection, broker = session()
    want(connection, probe("p1", "tracepoint", "shop.py", 13))
    await ready(connection)
    log_line = {"type": "Event", "name": "LogPointEvent", "tracePointId": "p1", "logMessage": "x"}
    await connection.handle(log_line)
    assert broker.stored == [] and broker.metrics.events_refused_total == 1


async def test_pending_work_is_cancelled_on_close_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection, _ = session()
    failed = asyncio.get_running_loop().create_future()
    waiting = asyncio.Event()

    async def fails() -> None:
        failed.set_result(None)
        raise RuntimeError("store down")

    connection._later(fails())
    connection._later(waiting.wait())
    [waiter] = [t for t in connection._tasks if "wait" in repr(t.get_coro())]
    await failed
    await asyncio.sleep(0)  # a turn of the loop: the failed task ends
    connection.closed()
    await asyncio.wait([waiter], timeout=10)
    assert waiter.cancelled()
    assert "store down" in caplog.text
