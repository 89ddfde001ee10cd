"""How long each web UI page takes to render on the server, with 100,000 stored events and
1,000 probes.

The app is built in this process (``create_app`` on SQLite in a temporary directory) and
filled through the store functions the server itself uses: 1,000 probes on 10 services, and
100,000 events (60% log lines, 30% snapshots of 8 frames, 10% exceptions in 100 groups).
Each page is then requested ``--repeat`` times through Starlette's test client (the whole
ASGI path: cookie sign-in, the REST handlers, the queries, Jinja2) and the median and p95
are reported. The source view needs a live agent to read the file; its server-side part
(Pygments highlighting and the template) is timed directly on a 5,000-line file, and so is
a snapshot with a 10,000-node variable tree (the browser draws it lazily).

    .venv/bin/python benchmarks/ui_pages.py [--events 100000] [--probes 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any, Optional

from _server_harness import Result, machine_rows, percentile, print_report, snapshot_event
from starlette.testclient import TestClient

from peephole import protocol
from peephole.server.app import create_app
from peephole.server.settings import ServerSettings
from peephole.server.store import events as event_store
from peephole.server.store import instances as instance_store
from peephole.server.store import probes as probe_store
from peephole.server.ui import environment, render
from peephole.server.ui.session import csrf_for

ADMIN_TOKEN = "bench-ui-admin-token"
TARGET_MS = 100.0
SERVICES = [f"svc-{n}" for n in range(10)]


def seed(app: Any, events: int, probes: int) -> dict[str, str]:
    """Fill the store; return ids of a probe, a snapshot and an exception group to open."""
    db = app.state.broker.db
    now = time.time()
    probe_ids: list[str] = []

    def make_probes(session: Any) -> None:
        for n in range(probes):
            fields = {
                "kind": protocol.TRACEPOINT,
                "file": f"app/module_{n % 50}.py",
                "line": 10 + n,
                "condition": "user.id == 42",
                "watches": ["cart.total"],
                "hit_limit": 1000,
                "expire_seconds": 3600.0,
                "target": {"service": SERVICES[n % len(SERVICES)]},
            }
            probe_ids.append(probe_store.create(session, fields, "bench", now).id)

    db.run(make_probes)
    for service in SERVICES:  # one instance each, as a connected agent would have registered
        info = protocol.InstanceInfo(
            f"instance-{service}",
            service,
            version="1.0.0",
            environment="bench",
            host="bench",
            pid=1,
        )
        db.run(lambda s, info=info: instance_store.register(s, info, now))
    batch = 1000
    for start in range(0, events, batch):
        items = [
            _event(i, probe_ids, now - (events - i) * 0.5)
            for i in range(start, min(events, start + batch))
        ]
        service = SERVICES[(start // batch) % len(SERVICES)]
        origin = event_store.Origin(service, f"instance-{service}", "1.0.0")
        db.run(lambda s, items=items, origin=origin: event_store.insert(s, origin, items, now))
    snapshot = db.run(
        lambda s: event_store.query(s, event_store.EventFilter(type=protocol.SNAPSHOT), 1)[0][0]
    )
    group = db.run(lambda s: event_store.exception_groups(s, None, 1)[0])
    return {
        "probe": snapshot["probe_id"],
        "snapshot": snapshot["id"],
        "fingerprint": group["fingerprint"],
    }


def _event(i: int, probe_ids: list[str], moment: float) -> dict[str, Any]:
    probe_id = probe_ids[i % len(probe_ids)]
    kind = i % 10
    if kind < 6:
        event = protocol.new_event(
            protocol.LOG,
            probe_id=probe_id,
            level="info",
            message=f"order {i} total={i * 3.5:.2f} <ok>",
            errors=[],
        )
    elif kind < 9:
        event = snapshot_event(probe_id)
    else:
        event = protocol.new_event(
            protocol.EXCEPTION,
            fingerprint=f"fp-{i % 100}",
            exc_type="ValueError",
            message=f"bad order {i}",
            frames=snapshot_event(probe_id)["frames"],
            count=1,
        )
    event["time"] = moment
    return event


def time_page(client: TestClient, url: str, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return timings


def time_call(work: Callable[[], object], repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def source_text(lines: int) -> str:
    return "".join(
        f"def handler_{n}(request, cart):\n    total = sum(i.price for i in cart.items)  # {n}\n"
        for n in range(lines // 2)
    )


def source_render(text: str) -> Callable[[], object]:
    """The source page's own work once the agent has answered (highlighting is cached)."""
    template = environment.get_template("source.html")
    lines = render.highlight_lines(text)
    probeable = set(range(1, len(lines), 2))

    def work() -> object:
        rows = render.source_rows(render.highlight_lines(text), probeable, {}, None, "big.py")
        return template.render(
            viewer=_viewer(),
            service="svc-0",
            path="/srv/app/big.py",
            error=None,
            rows=rows,
            gutter={},
            line=None,
        )

    return work


def big_tree(nodes: int) -> dict[str, Any]:
    """Locals with ``nodes`` values: 100 lists of 99 dicts (the tree the browser opens)."""
    per = nodes // 100
    return {
        f"rows_{n}": {
            "t": "list",
            "len": per,
            "items": [
                {
                    "t": "dict",
                    "len": 1,
                    "entries": [[{"t": "str", "v": "id"}, {"t": "int", "v": i}]],
                }
                for i in range(per - 1)
            ],
        }
        for n in range(100)
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = ServerSettings.load({}, data_dir=data_dir, admin_token=ADMIN_TOKEN)
        app = create_app(settings)
        started = time.perf_counter()
        ids = seed(app, args.events, args.probes)
        seeded = time.perf_counter() - started
        with TestClient(app) as client:
            client.cookies.set("peephole_session", ADMIN_TOKEN)
            pages = {
                "services": "/",
                "probes (all services)": "/probes",
                "probes of one service": "/probes?service=svc-0",
                "one probe with its hits": f"/probes/{ids['probe']}",
                "snapshot": f"/events/{ids['snapshot']}",
                "live logs": "/logs",
                "exceptions": "/exceptions",
                "exception group": f"/exceptions/{ids['fingerprint']}",
                "admin": "/admin",
            }
            results = []
            for name, url in pages.items():
                timings = time_page(client, url, args.repeat)
                results.append(_result(f"page: {name}", timings))
        text = source_text(5000)
        results.append(
            _result("source view of a 5,000-line file", time_call(source_render(text), args.repeat))
        )
        highlight = render.highlight_lines.__wrapped__  # the first view of a file, uncached
        results.append(
            _result(
                "highlighting it the first time (Pygments)",
                time_call(lambda: highlight(text), 3),
                target=None,
            )
        )
        tree = big_tree(10_000)
        template = environment.get_template("event.html")
        event = {
            "id": "e" * 32,
            "type": "snapshot",
            "time": time.time(),
            "service": "svc-0",
            "instance_id": "i",
            "frames": [],
        }
        results.append(
            _result(
                "snapshot page with a 10,000-node tree (template)",
                time_call(
                    lambda: template.render(
                        viewer=_viewer(),
                        event=event,
                        frames=[],
                        frame=0,
                        chosen={"function": "f", "file": "f.py", "line": 1},
                        source=[],
                        no_source="",
                        older=None,
                        newer=None,
                        values=tree,
                        watches={},
                    ),
                    args.repeat,
                ),
            )
        )
    setup = [
        *machine_rows(),
        ("stored events", f"{args.events:,}"),
        ("probes", f"{args.probes:,}"),
        ("database", "SQLite (WAL), temporary directory"),
        ("time to seed", f"{seeded:.0f} s"),
        ("requests per page", str(args.repeat)),
    ]
    print_report("Web UI: server-side render time", setup, results)
    return 0 if all(r.passed is not False for r in results) else 1


def _viewer() -> Any:
    from peephole.server.store.credentials import Principal
    from peephole.server.ui.session import Viewer

    return Viewer(Principal(name="bench", role="admin"), csrf_for(ADMIN_TOKEN))


def _result(name: str, timings: list[float], target: Optional[float] = TARGET_MS) -> Result:
    """Judged by the median: on a shared 2-core machine the tail measures the neighbours."""
    median = statistics.median(timings)
    p95 = percentile(timings, 0.95)
    shown = f"median {median:.1f} ms, p95 {p95:.1f} ms"
    if target is None:
        return Result(name, shown)
    return Result(name, shown, f"< {target:.0f} ms", median < target)


if __name__ == "__main__":
    sys.exit(main())
