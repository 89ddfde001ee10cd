"""The server's resident memory with 1,000 idle agents connected.

A real ``peephole server`` (SQLite in a temporary directory, or ``--database URL``) with
three live tracepoints, then 1,000 fake agents connected over real WebSockets from this
process (see ``_server_harness``), 50 at a time: each is welcomed, gets its probe list,
reports the probes active, and from then on only sends a heartbeat every 10 s. VmRSS (from
``/proc/<pid>/status``) is read before the agents connect and every second for ``--settle``
seconds after (at least one heartbeat round); the table shows the highest reading.

    .venv/bin/python benchmarks/server_idle_memory.py [--database postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import ExitStack
from typing import Optional

from _server_harness import (
    SERVICE,
    Result,
    ServerProcess,
    api_client,
    database_label,
    fleet,
    machine_rows,
    postgres_schema,
    print_report,
)

from peephole import protocol

TARGET_MB = 250.0
PROBES = 3


async def measure(server: ServerProcess, agents: int, settle: float) -> dict[str, float]:
    async with api_client(server) as api:
        for line in range(40, 40 + PROBES):
            response = await api.post(
                "/probes",
                json={
                    "kind": "tracepoint",
                    "file": "shop/cart.py",
                    "line": line,
                    "target": {"service": SERVICE},
                },
            )
            response.raise_for_status()
    before = server.rss_mb()
    started = time.monotonic()
    async with fleet(server.ws_url, agents):  # each connection is bounded by its timeouts
        connect_seconds = time.monotonic() - started
        readings = []
        until = time.monotonic() + settle
        while time.monotonic() < until:
            await asyncio.sleep(1)
            readings.append(server.rss_mb())
        connected = server.metric("peephole_agents_connected")
    return {
        "before": before,
        "peak": max(readings),
        "last": readings[-1],
        "connected": connected,
        "connect_seconds": connect_seconds,
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        help="a postgresql:// URL (a fresh schema is used and "
        "dropped); default: SQLite in a temporary directory",
    )
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument(
        "--settle",
        type=float,
        default=protocol.HEARTBEAT_SECONDS + 5,
        help="seconds to watch memory once all agents are connected",
    )
    args = parser.parse_args(argv)
    setup = machine_rows()
    with ExitStack() as stack:
        database = args.database
        if database:
            database = stack.enter_context(postgres_schema(database))
        server = stack.enter_context(ServerProcess(database))
        memory = asyncio.run(measure(server, args.agents, args.settle))
    per_agent_kb = (memory["peak"] - memory["before"]) * 1024 / args.agents
    setup += [
        ("database", database_label(args.database)),
        (
            "agents",
            f"{args.agents} fake agents in one asyncio process, real WebSockets, "
            f"{PROBES} live probes, heartbeats every {protocol.HEARTBEAT_SECONDS:g} s",
        ),
    ]
    passed = memory["peak"] < TARGET_MB and memory["connected"] == args.agents
    print_report(
        f"Server memory with {args.agents} idle agents",
        setup,
        [
            Result(
                "agents connected (server's /metrics)",
                f"{memory['connected']:.0f}",
                str(args.agents),
                memory["connected"] == args.agents,
            ),
            Result("time to connect them all (50 at a time)", f"{memory['connect_seconds']:.1f} s"),
            Result("resident memory before the agents connect", f"{memory['before']:.0f} MB"),
            Result(
                f"resident memory with {args.agents} idle agents (peak over {args.settle:g} s)",
                f"{memory['peak']:.0f} MB",
                f"< {TARGET_MB:g} MB",
                memory["peak"] < TARGET_MB,
            ),
            Result("added per connected agent", f"{per_agent_kb:.0f} KB"),
        ],
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
