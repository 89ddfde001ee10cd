"""Flask: a failing route, served for real, becomes one grouped exception with its locals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import flask
import httpx

from integrations.capture_harness import Harness, serve_wsgi


def make_app() -> flask.Flask:
    app = flask.Flask("shop")

    @app.route("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        basket = ["apple", "pear"]
        total = order_id * 3
        if total:
            raise RuntimeError(f"payment declined for {len(basket)} items")
        return "ok"

    @app.route("/health")
    def health() -> str:
        return "ok"

    return app


def test_a_failing_route_is_one_group_with_the_routes_locals(capturing: Harness) -> None:
    with serve_wsgi(make_app()) as url:
        statuses = [httpx.get(f"{url}/orders/{n}").status_code for n in (7, 8, 9)]
        assert httpx.get(f"{url}/health").status_code == 200
    capturing.exceptions.flush()
    assert statuses == [500, 500, 500]
    events = capturing.events
    assert {e["fingerprint"] for e in events} == {events[0]["fingerprint"]}
    assert sum(e["count"] for e in events) == 3
    snapshot = events[0]
    assert snapshot["origin"] == "flask"
    assert snapshot["exc_type"] == "RuntimeError"
    assert snapshot["message"] == "payment declined for 2 items"
    route = snapshot["frames"][0]
    assert route["function"].endswith("order") and route["app"] is True
    assert route["locals"]["total"] == {"t": "int", "v": 21}
    assert route["locals"]["basket"]["len"] == 2
    library = [f for f in snapshot["frames"] if not f["app"]]
    assert library and all(f["library"] == "site-packages" for f in library)


def test_flask_is_hooked_when_the_application_imports_it_after_the_agent_started() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import peephole

        events = []
        agent = peephole.start(service="late-flask")
        agent.sink = lambda batch: events.extend(batch) or True
        assert "flask" not in sys.modules

        import flask

        app = flask.Flask("late")

        @app.route("/boom")
        def boom():
            answer = 42
            raise KeyError("boom")

        status = app.test_client().get("/boom").status_code
        agent.flush()
        print(json.dumps({"status": status, "events": events}))
        peephole.stop()
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 500
    [event] = report["events"]
    assert event["origin"] == "flask" and event["exc_type"] == "KeyError"
    assert event["frames"][0]["locals"]["answer"]["v"] == 42
