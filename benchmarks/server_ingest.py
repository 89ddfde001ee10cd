"""How many snapshots a second the server stores, with 50 agents sending at once.

A real ``peephole server`` (SQLite in a temporary directory, and PostgreSQL in a fresh
schema with ``--postgres URL``) with 50 fake agents connected over real WebSockets from this
process (see ``_server_harness``). Each agent sends ``events`` messages of ``--batch``
snapshots (about 2 KB of JSON each, with unique ids, for a real tracepoint created through
the REST API) and waits for the ``ack`` (stored and committed) before sending the next, as
the agent's transport does. A short warm-up is not counted; the server's ``/metrics`` must
then show every snapshot stored.

    .venv/bin/python benchmarks/server_ingest.py [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

from _server_harness import (
    SERVICE,
    FakeAgent,
    Result,
    ServerProcess,
    api_client,
    database_label,
    fleet,
    machine_rows,
    postgres_schema,
    print_report,
    snapshot_event,
)

from peephole import protocol

TARGET = 10_000.0  # snapshots per second, on SQLite and on PostgreSQL (issue 12)
WARMUP_BATCHES = 2  # per agent, not counted
DEADLINE = 300.0  # seconds for one database's whole run
STORED = "peephole_events_stored_total"
ID_MARK = "@" * 24  # replaced by 24 hex digits: 8 for the agent, 16 for the batch
SEQ_MARK = 987654321


@dataclass
class Ingest:
    database: str
    snapshots: int
    seconds: float
    server_cpu: float  # seconds of server CPU during the timed part
    agents_cpu: float  # seconds of this process's CPU (the fake agents) during it
    event_bytes: int  # one snapshot's JSON
    stored: int  # what /metrics says was stored, warm-up included
    expected: int

    @property
    def rate(self) -> float:
        return self.snapshots / self.seconds


def batch_template(probe_id: str, size: int) -> tuple[str, int]:
    """An ``events`` message of ``size`` snapshots with placeholders for the batch's
    identity (``ID_MARK``, in every event id) and ``seq``; and one snapshot's size."""
    base = snapshot_event(probe_id)
    events = [dict(base, id=f"{ID_MARK}{index:08x}") for index in range(size)]
    message = protocol.encode({"type": "events", "seq": SEQ_MARK, "events": events, "dropped": 0})
    return message.replace(f'"seq":{SEQ_MARK}', '"seq":@SEQ@'), len(protocol.encode(events[0]))


async def send(agent: FakeAgent, number: int, template: str, first: int, batches: int) -> None:
    for seq in range(first, first + batches):
        text = template.replace(ID_MARK, f"{number:08x}{seq:016x}").replace("@SEQ@", str(seq), 1)
        await agent.send_events(seq, text)


async def run(server: ServerProcess, label: str, agents: int, batches: int, size: int) -> Ingest:
    async with api_client(server) as api:
        response = await api.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": "shop/cart.py",
                "line": 42,
                "hit_limit": None,
                "target": {"service": SERVICE},
            },
        )
        response.raise_for_status()
        probe_id = response.json()["id"]
    template, event_bytes = batch_template(probe_id, size)
    async with fleet(server.ws_url, agents) as connected:
        await asyncio.gather(
            *(send(a, n, template, 1, WARMUP_BATCHES) for n, a in enumerate(connected))
        )
        cpu_before, agents_before = server.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    send(a, n, template, 1 + WARMUP_BATCHES, batches)
                    for n, a in enumerate(connected)
                )
            ),
            DEADLINE,
        )
        seconds = time.perf_counter() - started
        server_cpu = server.cpu_seconds() - cpu_before
        agents_cpu = time.process_time() - agents_before
    return Ingest(
        database=label,
        snapshots=agents * batches * size,
        seconds=seconds,
        server_cpu=server_cpu,
        agents_cpu=agents_cpu,
        event_bytes=event_bytes,
        stored=int(server.metric(STORED)),
        expected=agents * (WARMUP_BATCHES + batches) * size,
    )


def measure(database: Optional[str], agents: int, batches: int, size: int) -> Ingest:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema(database)) if database else None
        server = stack.enter_context(ServerProcess(url))
        return asyncio.run(run(server, database_label(database), agents, batches, size))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure PostgreSQL at URL (in a fresh schema, dropped afterwards)",
    )
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per agent")
    parser.add_argument("--batch", type=int, default=50, help="snapshots per events message")
    args = parser.parse_args(argv)
    setup = machine_rows()
    runs = [measure(None, args.agents, args.batches, args.batch)]
    if args.postgres:
        runs.append(measure(args.postgres, args.agents, args.batches, args.batch))
    setup += [
        ("agents", f"{args.agents} fake agents in one asyncio process, real WebSockets"),
        (
            "load",
            f"{args.batches} timed batches of {args.batch} snapshots per agent "
            f"({runs[0].event_bytes:,} bytes of JSON each), one batch in flight per "
            f"agent; after {WARMUP_BATCHES} warm-up batches",
        ),
    ]
    results = []
    ok = True
    for r in runs:
        passed = r.rate >= TARGET
        ok = ok and passed and r.stored == r.expected
        results += [
            Result(
                f"{r.database}: snapshots stored per second",
                f"{r.rate:,.0f}",
                f">= {TARGET:,.0f}",
                passed,
            ),
            Result(
                f"{r.database}: server CPU per snapshot (its own process)",
                f"{r.server_cpu / r.snapshots * 1e6:.0f} us",
            ),
            Result(
                f"{r.database}: the fake agents' CPU per snapshot (load generator)",
                f"{r.agents_cpu / r.snapshots * 1e6:.0f} us",
            ),
            Result(
                f"{r.database}: stored (from /metrics) / sent",
                f"{r.stored:,} / {r.expected:,}",
                "all",
                r.stored == r.expected,
            ),
        ]
    print_report(f"Ingest: {args.agents} agents sending snapshots", setup, results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
