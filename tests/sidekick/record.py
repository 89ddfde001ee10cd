"""Record what the real Sidekick agents send and answer (by hand, to renew the fixtures):

    .venv/bin/python tests/sidekick/record.py node|python OUT.jsonl

Starts the recorder, the app with its agent, and walks one scenario: connect, tracepoint
put and hit, logpoint put and hit, disable/enable/remove, a failing put, an error (Python),
a broker-side close and the reconnect, a wrong key. The fixtures in ``fixtures/`` came from
this script; PEEPHOLE_TEST_SIDEKICK_NODE / _PYTHON name the agents as for the tests, and
test_recorded_frames.py walks the same scenario to check the fixtures still hold."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).parents[1]))

from sidekick.apps import (
    NODE_APP,
    NODE_ENV,
    PYTHON_APP,
    PYTHON_ENV,
    AgentApp,
    marker_line,
    node_app,
    python_app,
)
from sidekick.recorder import Frame, Recorder, named

KEY = "recorded-key"
LOG = "cart {{cart.id}} user={{user.name}} vip={{user.vip}}"


def scenario(
    recorder: Recorder,
    start: Callable[[str], AgentApp],
    file: str,
    line: int,
    bad: dict[str, Any],
    errors: bool,
) -> None:
    """One walk through everything the agent does; ``errors``: it reports install failures
    and caught errors as events (Python; Node 0.0.8 has neither)."""
    app = start(KEY)
    try:
        recorder.wait_for(named("FilterLogPointsRequest"))
        tp = {"tracePointId": f"{file}::{line}::SessionGroup", "fileName": file, "lineNo": line}
        lp = {"logPointId": f"{file}::{line}::SessionGroup", "fileName": file, "lineNo": line}
        limits = {"expireSecs": 600, "expireCount": 50, "disable": False, "tags": []}
        recorder.request("PutTracePointRequest", enableTracing=False, **tp, **limits)
        at = recorder.mark()
        app.hit("vip")
        recorder.wait_for(named("TracePointSnapshotEvent"), after=at)
        log = {"logExpression": LOG, "stdoutEnabled": True, "logLevel": "INFO"}
        recorder.request("PutLogPointRequest", **lp, **limits, **log)
        at = recorder.mark()
        app.hit()
        recorder.wait_for(named("LogPointEvent"), after=at)
        recorder.request("DisableTracePointRequest", **tp)
        at = recorder.mark()
        app.hit()
        recorder.wait_for(named("LogPointEvent"), after=at)
        recorder.request("EnableTracePointRequest", **tp)
        at = recorder.mark()
        app.hit()
        recorder.wait_for(named("TracePointSnapshotEvent"), after=at)
        recorder.request("UpdateLogPointRequest", **lp, **limits, **log, conditionExpression="")
        recorder.request("RemoveTracePointRequest", **tp)
        recorder.request("RemoveLogPointRequest", **lp)
        recorder.request("RemoveTracePointRequest", **tp)  # already gone: an error answer
        app.hit()
        at = recorder.mark()
        recorder.request("PutTracePointRequest", enableTracing=False, **limits, **bad)
        if errors:
            recorder.wait_for(named("PutTracePointFailedEvent"), after=at)
            app.hit("boom")
            recorder.wait_for(named("ErrorStackSnapshotEvent"), after=at)
        at = recorder.mark()
        recorder.drop()
        recorder.wait_for(named("FilterLogPointsRequest"), after=at)
        wrong = start("wrong-key")
        try:
            recorder.wait_for(lambda e: True, "refused", after=at)
        finally:
            wrong.stop()
    finally:
        app.stop()


def record(runtime: str, install: str, out: Path | None = None) -> list[Frame]:
    """Walk the scenario with the ``runtime`` agent from ``install`` (node_modules or a
    Python 3.8); what went over the wire, also written to ``out``."""
    with Recorder(KEY, out) as recorder:
        if runtime == "node":
            start = functools.partial(node_app, install, recorder.port)
            line = marker_line(NODE_APP / "app.js", "checkout")
            bad = {"tracePointId": "/nope.js::3::SessionGroup", "fileName": "/nope.js", "lineNo": 3}
            scenario(recorder, start, "/app.js", line, bad, errors=False)
        else:
            # the config map decides (a False there turns off what the variable turned on),
            # but only the variable traces the main thread: the config thread cannot
            recorder.config["errorCollectionEnable"] = True
            start = functools.partial(
                python_app, install, recorder.port, SIDEKICK_ERROR_STACK_ENABLE="true"
            )
            line = marker_line(PYTHON_APP / "shop.py", "checkout")
            file = "shop.py?ref=0123abc"
            bad = {"tracePointId": f"{file}::8::SessionGroup", "fileName": file, "lineNo": 8}
            scenario(recorder, start, file, line, bad, errors=True)
        return recorder.entries


if __name__ == "__main__":
    runtime, out = sys.argv[1], Path(sys.argv[2])
    out.unlink(missing_ok=True)
    record(runtime, os.environ[NODE_ENV if runtime == "node" else PYTHON_ENV], out)
