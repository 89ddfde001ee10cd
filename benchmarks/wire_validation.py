"""What checking agent messages against their definitions costs the gateway, per event.

Times :func:`peephole.messages.agent_message` on an ``events`` message of 1,000 snapshots
(the 2 KB snapshot of ``server_ingest.py``: 8 frames, locals in 3, watches, trace ids), best
of ``--repeat`` runs, and a ``status`` message of 100 probe statuses.

    .venv/bin/python benchmarks/wire_validation.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any, Callable

from _server_harness import snapshot_event

from peephole import messages, protocol

EVENTS = 1000
STATUSES = 100


def best_seconds(run: Callable[[], Any], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    repeat = parser.parse_args().repeat
    snapshot = snapshot_event("p1")
    events = [dict(snapshot, id=f"{n:032x}") for n in range(EVENTS)]
    batch = {"type": "events", "seq": 1, "events": events, "dropped": 0}
    status = protocol.ProbeStatus(probe_id="p1", state=protocol.ACTIVE, hits=3).to_dict()
    statuses = {"type": "status", "probes": [status] * STATUSES}
    per_event = best_seconds(lambda: messages.agent_message(batch), repeat) / EVENTS
    per_status = best_seconds(lambda: messages.agent_message(statuses), repeat) / STATUSES
    print(
        f"| machine | {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} |"
    )
    print(f"| Python | {platform.python_version()} |")
    size = len(protocol.encode(snapshot))
    print(f"| check one snapshot event ({size} bytes) | {per_event * 1e6:.2f} us |")
    print(f"| check one probe status | {per_status * 1e6:.2f} us |")


if __name__ == "__main__":
    main()
