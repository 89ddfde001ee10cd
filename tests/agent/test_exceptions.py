"""Exception snapshots: hooks, grouping, counts, message rendering and leaks (Python 3.9+)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List

import pytest
from manual_clock import EPOCH, ManualClock

from peephole import protocol
from peephole.agent import integrations
from peephole.agent.clock import REAL, Clock
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.exception_capture import ExceptionCapture
from peephole.agent.exception_capture import snapshots as exceptions
from peephole.agent.safe.capture import Capturer

logger = logging.getLogger("tests.agent.exceptions")


class Harness:
    """A real agent whose sink keeps what it delivers, with exception capture installed."""

    def __init__(self, clock: Clock = REAL, **settings: Any) -> None:
        self.delivered: List[Dict[str, Any]] = []
        self.agent = Agent(AgentConfig(service="test", **settings), sink=self._sink, clock=clock)
        self.agent.start()
        self.exceptions = ExceptionCapture(self.agent)
        self.exceptions.install()

    def _sink(self, batch: List[Dict[str, Any]]) -> bool:
        self.delivered.extend(batch)
        return True

    @property
    def events(self) -> List[Dict[str, Any]]:
        assert self.agent.flush(30.0)
        return list(self.delivered)

    def close(self) -> None:
        self.exceptions.uninstall()
        self.agent.stop()


@pytest.fixture(autouse=True)
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Uncaught thread exceptions end here (under the agent's hook), not in pytest's."""
    seen: List[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread.name))
    return seen


@pytest.fixture
def agent() -> Iterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def harness(clock: Clock = REAL, **settings: Any) -> Iterator[Harness]:
    h = Harness(clock, **settings)
    try:
        yield h
    finally:
        h.close()


def function(frame: Dict[str, Any]) -> str:
    """The function's name without its qualifiers (3.11+ report the qualified name)."""
    name: str = frame["function"]
    return name.rsplit(".", 1)[-1]


def snapshots(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The events with locals (the others only count)."""
    return [e for e in events if any("locals" in f for f in e.get("frames", []))]


def fail_with_locals(order_id: int, note: str) -> None:
    total = order_id * 2
    raise ValueError("order failed", order_id, total, note)


def test_logging_exception_is_captured_with_the_locals_of_the_failing_frame(agent: Harness) -> None:
    try:
        fail_with_locals(42, "gift")
    except ValueError:
        logger.exception("checkout failed")
    [event] = agent.events
    assert event["type"] == "exception"
    assert event["origin"] == "logging"
    assert event["exc_type"] == "ValueError"
    assert event["message"] == "('order failed', 42, 84, 'gift')"
    assert event["count"] == 1
    inner, outer = event["frames"]
    assert function(inner) == "fail_with_locals" and inner["app"] is True
    assert inner["locals"]["order_id"] == {"t": "int", "v": 42}
    assert inner["locals"]["total"] == {"t": "int", "v": 84}
    assert function(outer).startswith("test_logging")
    assert len(event["fingerprint"]) == 16


def test_uncaught_exception_in_a_thread_is_captured_and_the_previous_hook_still_runs(
    thread_errors: List[str], agent: Harness
) -> None:
    thread = threading.Thread(target=fail_with_locals, args=(7, "t"), name="worker-7")
    thread.start()
    thread.join()
    assert thread_errors == ["worker-7"]
    [event] = agent.events
    assert event["origin"] == "thread" and event["thread"] == "worker-7"
    assert event["frames"][0]["locals"]["order_id"]["v"] == 7


def test_uncaught_exception_in_the_main_thread_goes_through_sys_excepthook() -> None:
    script = textwrap.dedent(
        """
        import atexit, json
        from peephole.agent.config import AgentConfig
        from peephole.agent.core import Agent
        from peephole.agent.exception_capture import ExceptionCapture

        def sink(batch):
            for event in batch:
                print("EVENT " + json.dumps(event), flush=True)
            return True

        agent = Agent(AgentConfig(service="main"), sink=sink)
        agent.start()
        ExceptionCapture(agent).install()
        atexit.register(agent.flush)

        def main():
            raise RuntimeError("boom")

        main()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "RuntimeError: boom" in result.stderr  # the previous hook printed the traceback
    [line] = [ln for ln in result.stdout.splitlines() if ln.startswith("EVENT ")]
    event = json.loads(line[len("EVENT ") :])
    assert event["origin"] == "uncaught" and event["exc_type"] == "RuntimeError"
    assert event["message"] == "boom"
    assert [f["function"] for f in event["frames"]] == ["main", "<module>"]


async def _fail_in_task(amount: int) -> None:
    doubled = amount * 2
    raise LookupError(doubled)


def test_asyncio_task_whose_exception_is_never_retrieved(agent: Harness) -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(_fail_in_task(21))
        await asyncio.wait([task], timeout=10)  # does not retrieve its exception
        assert task.done()
        del task
        gc.collect()

    asyncio.run(main())
    [event] = [e for e in agent.events if e["origin"] == "asyncio"]
    assert event["exc_type"] == "LookupError" and event["message"] == "42"
    assert event["frames"][0]["locals"]["doubled"]["v"] == 42
    assert len(agent.events) == 1  # asyncio's own log record of it is the same exception


def test_asyncio_failing_callback_with_a_custom_loop_handler(agent: Harness) -> None:
    handled: List[str] = []

    def callback() -> None:
        where = "callback"
        raise KeyError(where)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: handled.append(context["message"]))
        loop.call_soon(callback)
        after = loop.create_future()
        loop.call_soon(after.set_result, None)  # callbacks run in order: this one comes next
        await asyncio.wait_for(after, 10)

    asyncio.run(main())
    assert len(handled) == 1
    [event] = agent.events
    assert event["origin"] == "asyncio" and event["exc_type"] == "KeyError"
    assert event["message"] == "'callback'"


def test_chained_exceptions_are_listed_with_their_own_frames(agent: Harness) -> None:
    def load(key: str) -> None:
        raise KeyError(key)

    def handler() -> None:
        try:
            load("sku-1")
        except KeyError as exc:
            raise RuntimeError("cannot load") from exc

    def implicit() -> None:
        try:
            handler()
        except RuntimeError:
            raise ValueError("while handling") from None

    try:
        handler()
    except RuntimeError:
        logger.exception("explicit cause")
    try:
        implicit()
    except ValueError:
        logger.exception("suppressed context")
    explicit, suppressed = agent.events
    assert explicit["exc_type"] == "RuntimeError"
    [cause] = explicit["chain"]
    assert cause["exc_type"] == "KeyError" and cause["message"] == "'sku-1'"
    assert function(cause["frames"][0]) == "load"
    assert cause["frames"][0]["locals"]["key"]["v"] == "sku-1"
    assert suppressed["chain"] == []


def test_implicit_context_is_followed(agent: Harness) -> None:
    try:
        try:
            {"present": 1}["missing"]
        except KeyError:
            raise TypeError("in handler")  # noqa: B904
    except TypeError:
        logger.exception("context")
    [event] = agent.events
    assert [c["exc_type"] for c in event["chain"]] == ["KeyError"]


class Marker:
    pass


def _fail_holding(marker: Marker) -> None:
    held = [marker]
    raise ValueError(len(held))


def test_no_frame_traceback_or_local_outlives_the_capture(agent: Harness) -> None:
    quiet = logging.getLogger("tests.agent.exceptions.quiet")  # pytest keeps records it sees
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())
    refs = []
    for origin in ("logging", "thread"):
        marker = Marker()
        refs.append(weakref.ref(marker))
        if origin == "logging":
            try:
                _fail_holding(marker)
            except ValueError:
                quiet.exception("leak check")
        else:
            thread = threading.Thread(target=_fail_holding, args=(marker,))
            thread.start()
            thread.join()
        del marker
    gc.collect()
    assert len(snapshots(agent.events)) == 2  # the thread's stack differs: another fingerprint
    assert [ref() for ref in refs] == [None, None]


def test_a_locals_dict_the_application_holds_is_left_intact(agent: Harness) -> None:
    order_id = 5
    context = locals()
    try:
        fail_with_locals(order_id, "ctx")
    except ValueError:
        logger.exception("with a locals() dict held")
    assert context["order_id"] == 5
    assert agent.events[0]["frames"][1]["locals"]["order_id"]["v"] == 5


def test_ten_thousand_identical_exceptions_make_one_snapshot_and_count_them_all(
    agent: Harness,
) -> None:
    for attempt in range(10_000):
        try:
            fail_with_locals(attempt, "same")
        except ValueError:
            logger.exception("again")
    agent.exceptions.flush()
    assert len(snapshots(agent.events)) == 1
    assert sum(e["count"] for e in agent.events) == 10_000
    assert {e["fingerprint"] for e in agent.events} == {agent.events[0]["fingerprint"]}
    assert agent.events[0]["snapshot"] is True
    # One count event, or more when the count thread's interval passed during the loop (a
    # loaded machine): together they count the other 9,999.
    count_events = agent.events[1:]
    assert sum(e["count"] for e in count_events) == 9_999
    for count_event in count_events:
        assert count_event["exc_type"] == "ValueError" and count_event["snapshot"] is False
        assert count_event["first_time"] <= count_event["last_time"]
        assert "locals" not in count_event["frames"][0]


def test_counts_are_sent_by_the_background_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exceptions, "COUNT_FLUSH_SECONDS", 0.05)
    with harness() as agent:
        for _ in range(3):
            try:
                fail_with_locals(1, "x")
            except ValueError:
                logger.exception("again")
        deadline = time.monotonic() + 5
        while sum(e["count"] for e in agent.events) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        events = agent.events
    assert sum(e["count"] for e in events) == 3  # no flush() was called
    assert [e["snapshot"] for e in events] == [True] + [False] * (len(events) - 1)


def test_a_new_snapshot_once_the_interval_has_passed() -> None:
    clock = ManualClock()
    with harness(clock, exception_interval=600.0) as agent:
        for _ in range(2):
            for _ in range(3):
                try:
                    fail_with_locals(1, "x")
                except ValueError:
                    logger.exception("again")
                clock.advance(100.0)  # the third one is at +200 s, within the interval
            clock.advance(400.0)  # the next batch starts 700 s after the first snapshot
        agent.exceptions.flush()
        events = agent.events
    assert len(snapshots(events)) == 2
    assert [e["count"] for e in events] == [1, 3, 2]  # snapshot, snapshot (+2 held), flush
    assert events[1]["first_time"] == EPOCH + 100.0 and events[1]["last_time"] == EPOCH + 700.0


def raise_distinct(count: int, times: int = 1) -> None:
    """Raise (and log) ``times`` each of ``count`` exceptions with distinct fingerprints."""
    for i in range(count):
        namespace: Dict[str, Any] = {}
        exec(
            compile(f"def f():\n    raise ValueError({i})\n", f"/app/mod{i}.py", "exec"), namespace
        )
        for _ in range(times):
            try:
                namespace["f"]()
            except ValueError:
                logger.exception("distinct")


def test_process_rate_limits_snapshots_but_not_counts() -> None:
    with harness(exception_rate=0.01) as agent:  # one token, the next in 100 s
        raise_distinct(5)
        agent.exceptions.flush()
        assert len({e["fingerprint"] for e in agent.events}) == 5
        assert len(snapshots(agent.events)) == 1
        assert sum(e["count"] for e in agent.events) == 5


def test_the_first_occurrence_of_a_fingerprint_is_sent_at_once() -> None:
    with harness(exception_rate=0.01) as agent:  # one snapshot, the next in 100 s
        raise_distinct(3, times=2)
        events = agent.events  # no flush(): the counts of later ones wait for it
        assert [(e["snapshot"], e["count"]) for e in events] == [(True, 1), (False, 1), (False, 1)]
        assert len({e["fingerprint"] for e in events}) == 3
        agent.exceptions.flush()
        assert sum(e["count"] for e in agent.events) == 6


def test_switched_off_and_on_by_the_server_policy(agent: Harness) -> None:
    agent.agent.set_policy(protocol.AgentPolicy(capture_exceptions=False))
    try:
        fail_with_locals(1, "off")
    except ValueError:
        logger.exception("off")
    assert agent.events == []
    agent.agent.set_policy(protocol.AgentPolicy(capture_exceptions=True))
    try:
        fail_with_locals(1, "on")
    except ValueError:
        logger.exception("on")
    assert len(agent.events) == 1


def test_switched_off_in_the_settings_installs_nothing() -> None:
    before = (sys.excepthook, threading.excepthook, logging.getLogRecordFactory())
    capture = ExceptionCapture(Agent(AgentConfig(capture_exceptions=False)))
    capture.install()
    try:
        assert (sys.excepthook, threading.excepthook, logging.getLogRecordFactory()) == before
        assert exceptions.active() is None
    finally:
        capture.uninstall()


def test_uninstall_restores_every_hook() -> None:
    loop_class = asyncio.BaseEventLoop
    before = (
        sys.excepthook,
        threading.excepthook,
        logging.getLogRecordFactory(),
        loop_class.__dict__["call_exception_handler"],
    )
    capture = ExceptionCapture(Agent(AgentConfig()))
    capture.install()
    assert sys.excepthook is not before[0]
    assert loop_class.__dict__["call_exception_handler"] is not before[3]
    capture.uninstall()
    after = (
        sys.excepthook,
        threading.excepthook,
        logging.getLogRecordFactory(),
        loop_class.__dict__["call_exception_handler"],
    )
    assert after == before


class AppError(Exception):
    """An application exception whose __str__ must never run during capture."""

    str_calls = 0

    def __str__(self) -> str:
        AppError.str_calls += 1
        return "ran application code"


class Order:
    def __repr__(self) -> str:
        raise AssertionError("repr of an application object ran")


def test_the_message_never_runs_application_code(agent: Harness) -> None:
    agent.agent.config.exception_interval = 0  # a snapshot for each
    for exc in (AppError("plain text"), AppError(Order(), 3), ValueError(Order()), AppError()):
        try:
            raise exc
        except Exception as caught:
            agent.exceptions.capture(caught, "test")
    assert AppError.str_calls == 0
    messages = [e["message"] for e in agent.events]
    assert messages[0] == "plain text"
    assert messages[1] == f"(<{__name__}.Order>, 3)"
    assert messages[2] == f"<{__name__}.Order>"
    assert messages[3] == ""
    assert agent.events[0]["exc_type"] == f"{__name__}.AppError"


def test_the_same_exception_seen_by_two_hooks_is_captured_once(agent: Harness) -> None:
    try:
        fail_with_locals(3, "twice")
    except ValueError as exc:
        logger.exception("first")
        sys.excepthook(type(exc), exc, exc.__traceback__)
    assert len(agent.events) == 1


def test_fingerprint_is_stable_when_code_moves_and_differs_by_location(agent: Harness) -> None:
    def run(source: str, name: str) -> str:
        namespace: Dict[str, Any] = {"__name__": "shop.cart"}
        exec(compile(source, "/srv/shop/cart.py", "exec"), namespace)
        try:
            namespace[name]()
        except ValueError as exc:
            agent.exceptions.capture(exc, "test")
        fingerprint: str = agent.events[-1]["fingerprint"]
        return fingerprint

    body = "def total():\n    x = 1\n    raise ValueError(x)\n"
    moved = "\n\n\n# a comment\n" + body
    other_line = "def total():\n    raise ValueError(1)\n"
    first = run(body, "total")
    assert run(moved, "total") == first
    assert run(other_line, "total") != first


def test_library_frames_are_marked_and_get_no_locals(agent: Harness) -> None:
    def parse(text: str) -> Any:
        return json.loads(text)

    try:
        parse("{not json")
    except ValueError:
        logger.exception("bad json")
    [event] = agent.events
    frames = event["frames"]
    library = [f for f in frames if not f["app"]]
    assert library and all(f["library"] == "stdlib" and "locals" not in f for f in library)
    assert frames[0]["app"] is False  # innermost frame is in json/decoder.py
    parse_frame = next(f for f in frames if function(f) == "parse")
    assert parse_frame["app"] is True and parse_frame["locals"]["text"]["v"] == "{not json"


def test_locals_only_for_the_configured_number_of_app_frames() -> None:
    def depth(n: int) -> None:
        if n == 0:
            raise ValueError("deep")
        depth(n - 1)

    with harness(exception_frames=2) as agent:
        try:
            depth(5)
        except ValueError:
            logger.exception("deep")
        [event] = agent.events
    with_locals = [f["locals"]["n"]["v"] for f in event["frames"] if "locals" in f]
    assert with_locals == [0, 1]  # the two nearest the raise


def test_a_failing_capturer_never_reaches_the_application(agent: Harness) -> None:
    class Broken(Capturer):
        def frames(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
            raise RuntimeError("capturer bug")

    agent.agent.capturer = Broken(agent.agent.config.limits, agent.agent.redactor)
    try:
        fail_with_locals(1, "x")
    except ValueError:
        logger.exception("still logs")
    assert agent.exceptions.capture(ValueError("direct"), "test") is None
    assert agent.events == []


def test_keyboard_interrupt_and_cancellation_are_not_failures(agent: Harness) -> None:
    for exc in (KeyboardInterrupt(), asyncio.CancelledError(), SystemExit(1)):
        agent.exceptions.capture(exc, "test")
    assert agent.events == []


class _CancelledAndException(asyncio.CancelledError, Exception):
    """A cancellation that is also an Exception: still a cancellation."""


class _InterruptAndException(KeyboardInterrupt, Exception):
    pass


def test_a_cancellation_or_interrupt_that_is_also_an_exception_is_not_a_failure(
    agent: Harness,
) -> None:
    for _ in range(2):  # the second time from the per-class verdict
        for exc in (_CancelledAndException(), _InterruptAndException()):
            agent.exceptions.capture(exc, "test")
    assert agent.events == []


def test_on_import_runs_after_the_module_has_run(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "late_module_for_peephole.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: List[Any] = []
    integrations.on_import("late_module_for_peephole", lambda m: seen.append(m.VALUE))
    assert seen == []
    import late_module_for_peephole

    assert seen == [42]
    assert not any(type(f).__name__ == "ImportHook" for f in sys.meta_path)
    assert late_module_for_peephole.__loader__.__class__.__name__ == "SourceFileLoader"
    integrations.on_import("late_module_for_peephole", lambda m: seen.append(m.VALUE))
    assert seen == [42, 42]  # already imported: at once
    sys.modules.pop("late_module_for_peephole")


def test_secrets_in_messages_and_locals_are_redacted(agent: Harness) -> None:
    def login(user: str) -> None:
        password = "hunter2"
        raise PermissionError(f"rejected Authorization: Bearer {password}abcdef123456 for {user}")

    try:
        login("ada")
    except PermissionError:
        logger.exception("login failed")
    [event] = agent.events
    assert "hunter2" not in event["message"] and "[redacted]" in event["message"]
    frame_locals = event["frames"][0]["locals"]
    assert frame_locals["password"]["cut"] == "redacted" and "v" not in frame_locals["password"]
    assert frame_locals["user"]["v"] == "ada"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_counts_only_its_own_exceptions() -> None:
    script = textwrap.dedent(
        """
        import json, logging, os
        import peephole

        events = []
        agent = peephole.start(service="fork")
        agent.sink = lambda batch: events.extend(batch) or True

        def fail():
            raise ValueError("same")

        def burst(times):
            for _ in range(times):
                try:
                    fail()
                except ValueError:
                    logging.getLogger("x").exception("boom")

        burst(3)  # one snapshot, two counted and not sent yet
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            events.clear()
            burst(2)
            peephole.stop()
            os.write(write_end, json.dumps([e["count"] for e in events]).encode())
            os._exit(0)
        os.close(write_end)
        child = json.loads(os.read(read_end, 65536).decode())
        os.waitpid(pid, 0)
        peephole.stop()
        print(json.dumps({"parent": [e["count"] for e in events], "child": child}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts == {"parent": [1, 2], "child": [2]}


def test_recursion_is_one_group_whatever_the_depth_and_frames_are_capped(agent: Harness) -> None:
    def descend(n: int) -> None:
        if n == 0:
            raise ValueError("bottom")
        descend(n - 1)

    for depth in (30, 60, 200):
        try:
            descend(depth)
        except ValueError:
            logger.exception("deep")
    agent.exceptions.flush()
    snapshot, counted = agent.events
    assert snapshot["fingerprint"] == counted["fingerprint"]
    assert counted["count"] == 2
    limit = agent.agent.config.limits.max_frames
    assert len(snapshot["frames"]) == limit and len(counted["frames"]) == limit
    assert function(snapshot["frames"][0]) == "descend"


def test_counts_stay_exact_when_many_threads_fail_at_once(agent: Harness) -> None:
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for attempt in range(500):
            try:
                fail_with_locals(attempt, "threads")
            except ValueError:
                logger.exception("concurrent")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    agent.exceptions.flush()
    events = agent.events
    assert sum(e["count"] for e in events) == 4_000
    assert len(snapshots(events)) == 1


def test_a_storm_of_new_fingerprints_is_sent_at_once_only_up_to_a_rate() -> None:
    clock = ManualClock()
    with harness(clock, exception_rate=0.01) as agent:
        raise_distinct(int(exceptions.FIRST_SEEN_RATE) + 10)
        # The snapshot of the first, then a count for each new one up to the rate's burst.
        assert len(agent.events) == 1 + int(exceptions.FIRST_SEEN_RATE)
        agent.exceptions.flush()
        assert sum(e["count"] for e in agent.events) == int(exceptions.FIRST_SEEN_RATE) + 10
