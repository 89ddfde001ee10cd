"""Starting the agent: peephole.start(), waiting, stopping, and the ``peephole run`` bootstrap
(sitecustomize) in real child interpreters, against a loopback gateway (Python 3.9+)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from agent_gateway import Gateway

import peephole
import peephole.agent.bootstrap
from peephole import protocol
from peephole.agent.config import ConfigError
from peephole.agent.delivery.transport import Transport
from peephole.agent.exception_capture import snapshots as exceptions
from peephole.agent.launch import ManagedAgent, start_agent

pytestmark = pytest.mark.timeout(60)

BOOTSTRAP_DIR = os.path.dirname(os.path.abspath(peephole.agent.bootstrap.__file__))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as gw:
        yield gw


@pytest.fixture(autouse=True)
def no_peephole_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("PEEPHOLE_"):
            monkeypatch.delenv(name)
    yield
    peephole.stop()


def test_without_a_server_the_agent_runs_in_process_only() -> None:
    agent = start_agent(service="solo", capture_exceptions=False)
    try:
        assert isinstance(agent, ManagedAgent)
        assert agent.transport is None
        assert agent.config.service == "solo"
    finally:
        agent.stop()


@pytest.mark.parametrize("settings", [{"server": "ftp://files.example"}, {"colour": "blue"}])
def test_a_bad_setting_in_code_is_an_error_at_start(settings: Dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        start_agent(**settings)


def test_start_waits_for_the_welcome_when_asked(gateway: Gateway) -> None:
    agent = start_agent(server=gateway.url, key="test-key", wait=10, capture_exceptions=False)
    try:
        assert len(gateway.sessions) == 1  # no polling: connected before start returned
        assert isinstance(agent, ManagedAgent) and agent.transport is not None
        assert agent.transport.connected
    finally:
        agent.stop()


def test_start_never_waits_for_the_server_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """No wait for the connection (counted, not timed: a loaded machine slows the start)."""
    waits: List[str] = []
    for name in ("wait_ready", "wait_connected"):
        real = getattr(Transport, name)
        monkeypatch.setattr(Transport, name, _recorded(waits, name, real))
    agent = start_agent(server=f"http://127.0.0.1:{free_port()}", capture_exceptions=False)
    try:
        assert waits == []
    finally:
        agent.stop()


def _recorded(calls: List[str], name: str, method: Callable[..., bool]) -> Callable[..., bool]:
    """``method``, appending ``name`` to ``calls`` at each call."""

    def record(self: Transport, timeout: float) -> bool:
        calls.append(name)
        return method(self, timeout)

    return record


def test_waiting_gives_up_after_wait_seconds(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="peephole")
    started = time.monotonic()
    agent = start_agent(
        server=f"http://127.0.0.1:{free_port()}", wait=0.5, capture_exceptions=False
    )
    try:
        assert 0.45 <= time.monotonic() - started < 15  # above: only catches no giving up
        assert any("not connected" in r.getMessage() for r in caplog.records)
    finally:
        agent.stop()


def test_stop_delivers_buffered_events_then_closes(gateway: Gateway) -> None:
    agent = start_agent(server=gateway.url, key="test-key", wait=10, capture_exceptions=False)
    agent.emit(protocol.new_event(protocol.LOG, probe_id="p", message="last words"))
    started = time.monotonic()
    agent.stop()
    assert time.monotonic() - started < 3
    assert [e["message"] for e in gateway.events] == ["last words"]
    gateway.wait_for(lambda: gateway.sessions[0].closed.is_set(), timeout=2)


def test_settings_come_from_the_environment(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEEPHOLE_SERVER", gateway.url)
    monkeypatch.setenv("PEEPHOLE_KEY", "test-key")
    monkeypatch.setenv("PEEPHOLE_SERVICE", "from-env")
    monkeypatch.setenv("PEEPHOLE_ENV", "staging")
    monkeypatch.setenv("PEEPHOLE_TAGS", "team=pay,region=eu")
    monkeypatch.setenv("PEEPHOLE_WAIT", "10")
    agent = peephole.start(version="9.9")  # keyword arguments win, the rest from PEEPHOLE_*
    assert peephole.start() is agent
    instance = gateway.sessions[0].instance
    assert (instance["service"], instance["environment"], instance["version"]) == (
        "from-env",
        "staging",
        "9.9",
    )
    assert instance["tags"] == {"team": "pay", "region": "eu"}


def test_exception_capture_is_installed_and_removed_with_the_agent() -> None:
    agent = start_agent(service="exc")
    assert isinstance(agent, ManagedAgent)
    try:
        assert exceptions.active() is agent.capture is not None
    finally:
        agent.stop()
    assert exceptions.active() is None


def test_exception_capture_can_be_switched_off() -> None:
    agent = start_agent(service="exc", capture_exceptions=False)
    try:
        assert exceptions.active() is None
    finally:
        agent.stop()


# --- the `peephole run` bootstrap, in child interpreters ------------------------------------

APP = textwrap.dedent(
    """
    import sys, time
    import peephole

    def work(n):
        total = n * 2
        return total  # @probe

    agent = peephole.current_agent()
    print("agent:", agent is not None and agent.config.service, flush=True)
    print("chained:", getattr(sys, "chained_sitecustomize", False), flush=True)
    if agent is not None and agent.config.server:
        deadline = time.time() + 30
        while time.time() < deadline and not any(s.captures for s in agent.statuses()):
            work(21)
            time.sleep(0.02)
        print("flushed:", agent.flush(10), flush=True)
    """
)


def run_app(tmp_path: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "bootstrapped_app.py"
    app.write_text(APP)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(app)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def probe_line() -> int:
    return next(n for n, text in enumerate(APP.splitlines(), 1) if text.endswith("# @probe"))


def test_bootstrap_starts_the_agent_before_the_program(tmp_path: Path, gateway: Gateway) -> None:
    gateway.probes = [
        {"id": "boot", "kind": "tracepoint", "file": "bootstrapped_app.py", "line": probe_line()}
    ]
    result = run_app(
        tmp_path,
        {
            "PYTHONPATH": BOOTSTRAP_DIR,
            "PEEPHOLE_SERVER": gateway.url,
            "PEEPHOLE_KEY": "test-key",
            "PEEPHOLE_SERVICE": "boot-shop",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "agent: boot-shop" in result.stdout
    assert "flushed: True" in result.stdout
    [snapshot] = [e for e in gateway.events if e["type"] == protocol.SNAPSHOT]
    assert snapshot["service"] == "boot-shop"
    assert snapshot["frames"][0]["locals"]["total"]["v"] == 42
    assert result.stderr == ""


def test_bootstrap_runs_the_sitecustomize_it_hides(tmp_path: Path) -> None:
    other = tmp_path / "site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import sys\nsys.chained_sitecustomize = True\n")
    result = run_app(
        tmp_path,
        {"PYTHONPATH": os.pathsep.join([BOOTSTRAP_DIR, str(other)]), "PEEPHOLE_SERVICE": "chain"},
    )
    assert result.returncode == 0, result.stderr
    assert "agent: chain" in result.stdout
    assert "chained: True" in result.stdout


def test_a_bad_setting_never_stops_the_program(tmp_path: Path) -> None:
    result = run_app(tmp_path, {"PYTHONPATH": BOOTSTRAP_DIR, "PEEPHOLE_WAIT": "soon"})
    assert result.returncode == 0, result.stderr
    assert "agent: False" in result.stdout
    assert "PEEPHOLE_WAIT" in result.stderr  # said once, where the person running it sees it


def test_bootstrap_adds_no_start_up_delay_without_a_server(tmp_path: Path) -> None:
    (tmp_path / "noop.py").write_text("import peephole\nassert peephole.current_agent()\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    environ.update(
        {"PYTHONPATH": BOOTSTRAP_DIR, "PEEPHOLE_SERVER": f"http://127.0.0.1:{free_port()}"}
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(tmp_path / "noop.py")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5  # an unreachable server does not hold up the exit


SHORT_JOB = textwrap.dedent(
    """
    import time
    import peephole

    def job():
        result = 6 * 7
        return result  # @probe

    agent = peephole.current_agent()
    deadline = time.time() + 20
    while not agent.statuses() or agent.statuses()[0].state != "active":
        assert time.time() < deadline
        time.sleep(0.01)
    job()  # then exit at once: what it captured is sent at exit
    """
)


def test_a_short_job_delivers_its_snapshot_at_exit(tmp_path: Path, gateway: Gateway) -> None:
    (tmp_path / "short_job.py").write_text(SHORT_JOB)
    line = next(n for n, t in enumerate(SHORT_JOB.splitlines(), 1) if t.endswith("# @probe"))
    gateway.probes = [{"id": "job", "kind": "tracepoint", "file": "short_job.py", "line": line}]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    environ.update(
        {"PYTHONPATH": BOOTSTRAP_DIR, "PEEPHOLE_SERVER": gateway.url, "PEEPHOLE_KEY": "test-key"}
    )
    result = subprocess.run(
        [sys.executable, str(tmp_path / "short_job.py")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    [snapshot] = [e for e in gateway.events if e["type"] == protocol.SNAPSHOT]
    assert snapshot["frames"][0]["locals"]["result"]["v"] == 42
    gateway.wait_for(lambda: gateway.sessions[0].closed.is_set(), timeout=5)


def run_script(tmp_path: Path, source: str, gateway: Gateway, **env: str) -> str:
    """Run ``source`` (as ``jobs.py``, an installed module whose ``main()`` the program
    ``job.py`` calls) under the ``peephole run`` bootstrap against ``gateway``; its stderr."""
    lib = tmp_path / "lib"
    lib.mkdir(exist_ok=True)
    (lib / "jobs.py").write_text(source)
    (tmp_path / "job.py").write_text("import jobs\njobs.main()\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    environ.update(
        {
            "PYTHONPATH": os.pathsep.join([BOOTSTRAP_DIR, str(lib)]),
            "PEEPHOLE_SERVER": gateway.url,
            "PEEPHOLE_KEY": "test-key",
            **env,
        }
    )
    result = subprocess.run(
        [sys.executable, str(tmp_path / "job.py")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def marked(source: str, marker: str) -> int:
    return next(n for n, t in enumerate(source.splitlines(), 1) if t.endswith(f"# @{marker}"))


EAGER_JOB = textwrap.dedent(
    """
    def job(n):
        return n * 2  # @probe

    def main():
        for n in range(300):  # at once: no waiting for the probe in the program
            job(n)
    """
)


def test_wait_returns_once_the_probes_are_installed(tmp_path: Path) -> None:
    with Gateway(probes_delay=0.5) as gateway:  # as a server that reads them from its database
        gateway.probes = [
            {
                "id": "eager",
                "kind": "logpoint",
                "file": "jobs.py",
                "line": marked(EAGER_JOB, "probe"),
                "template": "n={n}",
                "rate": 1000,
            }
        ]
        run_script(tmp_path, EAGER_JOB, gateway, PEEPHOLE_WAIT="10", PEEPHOLE_CPU_BUDGET="1")
        logs = [e for e in gateway.events if e["type"] == protocol.LOG]
        assert len(logs) == 300
        [final] = gateway.sessions[0].of_type("status")[-1]["probes"]
        assert (final["hits"], final["captures"]) == (300, 300)


FLOODING_JOB = textwrap.dedent(
    """
    import logging

    def flood(n):
        return n  # @flood

    def rare(n):
        return n  # @rare

    def snap(n):
        return n  # @snap

    def main():
        for n in range(10000):
            flood(n)
        for n in range(5):
            rare(n)
        snap(1)
        try:
            raise KeyError("at the end")
        except KeyError:
            logging.getLogger("job").exception("failed")
    """
)


def test_at_exit_what_matters_goes_first_and_the_rest_is_counted(
    tmp_path: Path,
) -> None:
    def probe(probe_id: str, kind: str, **fields: Any) -> Dict[str, Any]:
        return {
            "id": probe_id,
            "kind": kind,
            "file": "jobs.py",
            "line": marked(FLOODING_JOB, probe_id),
            "rate": 100000,
            **fields,
        }

    with Gateway(ack_delay=0.3) as slow:  # 500 events per ack: far too slow for 10,000
        slow.probes = [
            probe("flood", "logpoint", template="{n}"),
            probe("rare", "logpoint", template="{n}"),
            probe("snap", "tracepoint"),
        ]
        run_script(
            tmp_path,
            FLOODING_JOB,
            slow,
            PEEPHOLE_WAIT="10",
            PEEPHOLE_EXIT_TIMEOUT="1",
            PEEPHOLE_LOG_PROCESS_RATE="100000",
            PEEPHOLE_CPU_BUDGET="1",
        )
        slow.wait_for(lambda: slow.sessions[0].closed.is_set())
        events = list(slow.events)
        last = slow.sessions[0].messages[-1]
    by_probe = {p: [e for e in events if e.get("probe_id") == p] for p in ("flood", "rare", "snap")}
    assert len(by_probe["rare"]) == 5 and len(by_probe["snap"]) == 1
    assert [e["exc_type"] for e in events if e["type"] == protocol.EXCEPTION] == ["KeyError"]
    assert last["type"] == "status"  # the final statuses, with what could not be sent
    final = {s["probe_id"]: s for s in last["probes"]}
    assert final["flood"]["hits"] == final["flood"]["captures"] == 10000
    abandoned = last["agent"]["abandoned_events"]
    assert 0 < abandoned == 10000 - len(by_probe["flood"])
    assert final["flood"]["drops"] == abandoned


def test_a_refused_key_is_said_once_on_stderr_under_peephole_run(
    tmp_path: Path, gateway: Gateway
) -> None:
    job = "import time\ndef main():\n    time.sleep(1.5)\n"  # long enough to be refused
    started = time.monotonic()
    stderr = run_script(tmp_path, job, gateway, PEEPHOLE_KEY="wrong", PEEPHOLE_WAIT="30")
    assert time.monotonic() - started < 20  # a refusal ends the wait: the key will not change
    assert stderr.count("peephole:") == 1 and "refused" in stderr, stderr
    assert "unknown agent key" in stderr
    environ = {"PEEPHOLE_KEY": ""}
    stderr = run_script(tmp_path, job, gateway, PEEPHOLE_WAIT="10", **environ)
    assert stderr.count("peephole:") == 1 and "no agent key" in stderr, stderr


EARLY_FAILURE = textwrap.dedent(
    """
    import logging

    def main():  # fails and exits before the agent has had time to connect
        try:
            raise ValueError("at start")
        except ValueError:
            logging.getLogger("job").exception("failed")
    """
)


def test_what_a_process_captured_before_connecting_is_sent_at_exit(
    tmp_path: Path, gateway: Gateway
) -> None:
    started = time.monotonic()
    run_script(tmp_path, EARLY_FAILURE, gateway)  # no --wait
    if sys.version_info[:2] == (3, 12):  # no new thread at exit (gh-104690), so no connection
        assert time.monotonic() - started < 4  # and no waiting for one (exit_timeout is 5)
        return
    [failure] = [e for e in gateway.events if e["type"] == protocol.EXCEPTION]
    assert (failure["exc_type"], failure["message"]) == ("ValueError", "at start")
    last = gateway.sessions[0].messages[-1]
    assert last["type"] == "status" and last["agent"]["abandoned_events"] == 0
