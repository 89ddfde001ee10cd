"""How long a new probe takes to be active on 50 connected agents.

A real ``peephole server`` (SQLite in a temporary directory, or ``--database URL``) with 50
fake agents connected over real WebSockets from this process (see ``_server_harness``): each
answers a ``probes`` list with a ``status`` marking the new probe active, as the agent does.
A person's live stream (``WS /api/v1/stream?type=probe``) is open. For each of ``--probes``
tracepoints (after ``WARMUP`` that are not counted), the clock runs from sending
``POST /api/v1/probes`` until the stream shows the probe active on all 50 instances; then
the probe is deleted and the next one follows. When the stream has not shown that within
``STREAM_GRACE`` seconds but the REST API does, the creation is counted as a lost stream
update instead of timed.

    .venv/bin/python benchmarks/server_probe_latency.py [--database postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from _server_harness import (
    ADMIN_TOKEN,
    SERVICE,
    Result,
    ServerProcess,
    api_client,
    database_label,
    fleet,
    machine_rows,
    percentile,
    postgres_schema,
    print_report,
)
from websockets.asyncio.client import ClientConnection, connect

from peephole import protocol

TARGET_MEDIAN_MS = 50.0
STREAM_GRACE = 3.0  # seconds to wait for the stream before asking the REST API
PAUSE = 0.05  # seconds between a delete and the next creation
WARMUP = 3  # creations not counted (the server's first ones compile its SQL)
DEADLINE = 300.0  # seconds for the whole measurement


class ActiveWatcher:
    """Reads the live stream and notes when each probe is first active on every agent."""

    def __init__(self, stream: ClientConnection, agents: int) -> None:
        self.stream = stream
        self.agents = agents
        self.active_at: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self) -> None:
        async for raw in self.stream:
            message = json.loads(raw)
            if message.get("type") != "probe":
                continue
            probe = message["probe"]
            if all_active(probe, self.agents) and probe["id"] not in self.active_at:
                self.active_at[probe["id"]] = time.perf_counter()
                self.changed.set()

    async def wait_for(self, probe_id: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while probe_id not in self.active_at:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"probe {probe_id} not active on all agents in {timeout} s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return self.active_at[probe_id]


@dataclass
class Timings:
    active_ms: list[float] = field(default_factory=list)  # POST until all active (stream)
    response_ms: list[float] = field(default_factory=list)  # POST until its response
    lost: int = 0  # all active in the REST API, not in the stream after STREAM_GRACE


def all_active(probe: dict[str, Any], agents: int) -> bool:
    active: int = sum(s["state"] == protocol.ACTIVE for s in probe["statuses"])
    return active >= agents


async def measure(server: ServerProcess, agents: int, probes: int) -> Timings:
    """Time ``probes`` creations, one at a time, with ``agents`` connected."""
    timings = Timings()
    body: dict[str, Any] = {
        "kind": "tracepoint",
        "file": "shop/cart.py",
        "line": 42,
        "target": {"service": SERVICE},
    }
    stream_url = f"{server.ws_url}/api/v1/stream?token={ADMIN_TOKEN}&type=probe"
    async with (
        fleet(server.ws_url, agents),
        api_client(server) as api,
        connect(stream_url) as stream,
    ):
        watcher = ActiveWatcher(stream, agents)
        reader = asyncio.create_task(watcher.run())
        try:
            deadline = time.monotonic() + DEADLINE
            for number in range(-WARMUP, probes):
                if time.monotonic() > deadline:
                    print(f"stopped early: {DEADLINE:g} s are up", file=sys.stderr)
                    break
                counted = number >= 0
                started = time.perf_counter()
                response = await api.post("/probes", json=body)
                response_ms = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                probe_id = response.json()["id"]
                try:
                    active_ms = (await watcher.wait_for(probe_id, STREAM_GRACE) - started) * 1000
                    if counted:
                        timings.active_ms.append(active_ms)
                except TimeoutError:
                    stored = (await api.get(f"/probes/{probe_id}")).json()
                    if not all_active(stored, agents):
                        raise RuntimeError(f"probe never active on all agents: {stored}") from None
                    timings.lost += counted
                if counted:
                    timings.response_ms.append(response_ms)
                (await api.delete(f"/probes/{probe_id}")).raise_for_status()
                await asyncio.sleep(PAUSE)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return timings


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        help="a postgresql:// URL (a fresh schema is used and "
        "dropped); default: SQLite in a temporary directory",
    )
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--probes", type=int, default=100, help="probes created, one at a time")
    args = parser.parse_args(argv)
    setup = machine_rows()
    with contextlib.ExitStack() as stack:
        database = args.database
        if database:
            database = stack.enter_context(postgres_schema(database))
        server = stack.enter_context(ServerProcess(database))
        timings = asyncio.run(measure(server, args.agents, args.probes))
    active, response = timings.active_ms, timings.response_ms
    median = statistics.median(active) if active else float("nan")
    setup += [
        ("database", database_label(args.database)),
        ("agents", f"{args.agents} fake agents in one asyncio process, real WebSockets"),
        ("probes created", str(len(response))),
    ]
    print_report(
        "Probe created until active on every agent",
        setup,
        [
            Result(
                "POST until the stream shows all agents active, median",
                f"{median:.1f} ms",
                f"<= {TARGET_MEDIAN_MS:g} ms",
                median <= TARGET_MEDIAN_MS,
            ),
            Result("same, p99", f"{percentile(active, 0.99):.1f} ms" if active else "-"),
            Result("same, max", f"{max(active):.1f} ms" if active else "-"),
            Result(
                "POST response time (probe stored and pushed), median",
                f"{statistics.median(response):.1f} ms",
            ),
            Result(
                f"creations the stream did not show active within {STREAM_GRACE:g} s "
                "(the REST API did)",
                str(timings.lost),
                "0",
                timings.lost == 0,
            ),
        ],
    )
    return 0 if median <= TARGET_MEDIAN_MS and timings.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
