"""What exception capture adds to a Flask request, with capture off and on.

First, a real Flask app is called through its WSGI interface (no network, so only the
framework's and the agent's work is timed): a route that raises (Flask turns it into a 500
and logs it) and a route that returns normally. ROUNDS rounds go through every setup in
turn, REQUESTS requests of each kind per setup; the table shows the best round's time per
request and the difference from the run without an agent. Then, the cost of one capture on its own,
by the depth of the traceback.

Times are CPU time of the whole process (``time.process_time_ns``): the agent's own threads
count, and other processes busy on the same machine mostly do not. The capture table also
shows the application thread's share alone (``time.thread_time_ns`` of the thread that
raised): what a failing request waits for. The best of ROUNDS rounds
is shown rather than the median: on a shared machine the median of a 0.2 ms request moves
by tens of microseconds from run to run, the best round by a few.

    .venv/bin/python benchmarks/exception_overhead.py
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Tuple

import flask

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.exception_capture import ExceptionCapture
from peephole.protocol import AgentPolicy

ROUNDS = 25
REQUESTS = 500
CAPTURES = 300


def make_app() -> flask.Flask:
    app = flask.Flask("bench")
    app.logger.handlers = [logging.NullHandler()]  # Flask still logs the 500; not to stderr
    app.logger.propagate = False

    @app.route("/fail/<int:order_id>")
    def fail(order_id: int) -> str:
        basket = {"sku": "A-1", "qty": order_id, "items": list(range(10))}
        total = order_id * 3
        if total:
            raise KeyError(basket["sku"])
        return "unreachable"

    @app.route("/ok/<int:order_id>")
    def ok(order_id: int) -> str:
        basket = {"sku": "A-1", "qty": order_id}
        return str(basket["qty"])

    return app


def environ(path: str) -> Dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def time_requests(app: flask.Flask, path: str, expected: str) -> float:
    """Microseconds per request over REQUESTS requests."""
    env = environ(path)
    statuses: List[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[..., Any]:
        statuses.append(status)
        return lambda data: None

    started = time.process_time_ns()
    for _ in range(REQUESTS):
        body = app(dict(env), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    elapsed = time.process_time_ns() - started
    assert len(statuses) == REQUESTS and all(s.startswith(expected) for s in statuses)
    return elapsed / REQUESTS / 1000


class Setup:
    """An agent (or none) with exception capture in a given state."""

    def __init__(self, label: str, capture: Optional[str]) -> None:
        self.label = label
        self.capture = capture  # None: no agent; "off": policy off; "counted"; "snapshot"
        self.agent: Optional[Agent] = None
        self.exceptions: Optional[ExceptionCapture] = None

    def __enter__(self) -> Setup:
        if self.capture is None:
            return self
        settings: Dict[str, Any] = {"service": "bench"}
        if self.capture == "snapshot":  # every exception is a snapshot with locals
            settings.update(exception_interval=0.0, exception_rate=1e9)
        self.agent = Agent(AgentConfig(**settings), sink=lambda batch: True)
        self.agent.start()
        if self.capture == "off":
            self.agent.set_policy(AgentPolicy(capture_exceptions=False))
        self.exceptions = ExceptionCapture(self.agent)
        self.exceptions.install()
        time.sleep(0.05)  # let the agent's threads start before anything is timed
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.exceptions is not None:
            self.exceptions.uninstall()
        if self.agent is not None:
            self.agent.stop()


def order_total(order_id: int) -> int:
    basket = {"sku": "A-1", "qty": order_id, "items": list(range(10))}
    total = order_id * 3
    raise KeyError(basket["sku"], total)


def nested(depth: int, order_id: int) -> int:
    if depth == 0:
        return order_total(order_id)
    return nested(depth - 1, order_id)


def raise_and_capture(capture: Callable[..., Any], depth: int, attempt: int) -> None:
    # The frame that catches is in the traceback too: it holds little, like a framework's.
    try:
        nested(depth, attempt)
    except KeyError as exc:
        capture(exc, "bench")


def time_captures(exceptions: ExceptionCapture, depth: int) -> Tuple[float, float]:
    """Microseconds per exception raised through ``depth`` frames, caught and captured: CPU
    time of the process, and of the application thread (the one that raised) alone."""
    capture = exceptions.capture
    process_started = time.process_time_ns()
    thread_started = time.thread_time_ns()
    for attempt in range(CAPTURES):
        raise_and_capture(capture, depth, attempt)
    thread = time.thread_time_ns() - thread_started
    process = time.process_time_ns() - process_started
    return process / CAPTURES / 1000, thread / CAPTURES / 1000


def capture_table() -> None:
    """What one capture costs by the depth of the traceback, against capture switched off:
    for the whole process (with the agent's delivery thread) and on the application thread."""
    depths = (0, 10, 30)
    modes = ("off", "counted", "snapshot")
    clocks = ("process", "thread")
    samples: Dict[Tuple[str, int, str], List[float]] = {
        (m, d, c): [] for m in modes for d in depths for c in clocks
    }
    for round_number in range(ROUNDS + 1):
        for mode in modes:
            with Setup(mode, mode) as setup:
                assert setup.exceptions is not None
                for depth in depths:
                    process, thread = time_captures(setup.exceptions, depth)
                    if round_number:
                        samples[(mode, depth, "process")].append(process)
                        samples[(mode, depth, "thread")].append(thread)
    print(
        f"\nOne exception raised through N frames, caught and captured; best of {ROUNDS} "
        f"rounds of {CAPTURES}, minus the same with capture off; CPU time of the process "
        "and of the application thread alone (the one that raised; targets: counted 3 us, "
        "snapshot 60 us):\n"
    )
    print(
        "| frames in the traceback | counted | snapshot with locals "
        "| counted, application thread | snapshot, application thread |"
    )
    print("|---:|---:|---:|---:|---:|")
    for depth in depths:
        cells = []
        for clock in clocks:
            off = min(samples[("off", depth, clock)])
            for mode in ("counted", "snapshot"):
                cells.append(f"{min(samples[(mode, depth, clock)]) - off:.1f} us")
        print(f"| {depth + 3} | " + " | ".join(cells) + " |")
    print("\nA snapshot captures the locals of up to 8 application frames nearest the raise.")


def main() -> None:
    request_table()
    capture_table()


def request_table() -> None:
    app = make_app()
    setups = [
        Setup("no agent", None),
        Setup("agent, capture off (server policy)", "off"),
        Setup("agent, capture on: counted (same fingerprint within 10 min)", "counted"),
        Setup("agent, capture on: snapshot with locals every time", "snapshot"),
    ]
    # Rounds go through every setup in turn, so a change in the machine's load affects all.
    samples: List[List[List[float]]] = [[[], []] for _ in setups]
    for round_number in range(ROUNDS + 1):
        for setup, (fails, oks) in zip(setups, samples):
            with setup:
                time_requests(app, "/fail/7", "500")  # the first failure may be a snapshot
                fail = time_requests(app, "/fail/7", "500")
                ok = time_requests(app, "/ok/7", "200")
            if round_number:  # the first round warms up
                fails.append(fail)
                oks.append(ok)
            gc.collect()
    results = [(min(f), min(o)) for f, o in samples]
    base_fail, base_ok = results[0]
    version = ".".join(map(str, sys.version_info[:3]))
    print(
        f"Flask {metadata.version('flask')} on CPython {version}; best of {ROUNDS} rounds "
        f"of {REQUESTS} requests through the WSGI app; CPU time of the process.\n"
    )
    print("| setup | request that raises (500) | added | request that does not raise | added |")
    print("|---|---:|---:|---:|---:|")
    for setup, (fail, ok) in zip(setups, results):
        added_fail = "" if setup.capture is None else f"{fail - base_fail:+.1f} us"
        added_ok = "" if setup.capture is None else f"{ok - base_ok:+.1f} us"
        print(f"| {setup.label} | {fail:.1f} us | {added_fail} | {ok:.1f} us | {added_ok} |")


if __name__ == "__main__":
    main()
