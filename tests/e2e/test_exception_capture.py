"""Exception capture against a real server: an application under the real agent raises the
same exception 10,000 times; the server shows one group with a count of 10,000 and one
snapshot with locals; switching capture off and on again in the service's policy takes effect
in the running process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List

import pytest

from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.server]

SERVICE = "exceptions-e2e"

APP = textwrap.dedent(
    """
    import logging, sys, time
    import peephole
    from peephole.agent.exception_capture import snapshots as exceptions

    agent = peephole.start(service=sys.argv[1], server=sys.argv[2], key=sys.argv[3], wait=15)
    logging.getLogger("shop").addHandler(logging.NullHandler())  # no tracebacks on stderr

    def charge(attempt):
        card = "visa"
        amount = 100 + attempt
        raise ValueError("card declined", card)

    def burst(times):
        for attempt in range(times):
            try:
                charge(attempt)
            except ValueError:
                logging.getLogger("shop").exception("payment failed")

    def wait_for(switched_on):
        deadline = time.monotonic() + 15
        while exceptions.active()._switched_on() != switched_on:
            if time.monotonic() > deadline:
                raise SystemExit("the policy did not arrive")
            time.sleep(0.02)

    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "burst":
            burst(int(argument))
            exceptions.active().flush()
            agent.flush()
        elif command == "wait":
            wait_for(argument == "on")
        elif command == "quit":
            break
        print("done", flush=True)
    peephole.stop()
    """
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path).start()
    yield process
    process.stop()


class App:
    """The application process, driven line by line through its stdin."""

    def __init__(self, server: ServerProcess) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", APP, SERVICE, server.url, AGENT_KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        return stdout.readline().strip()

    def send(self, command: str) -> None:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(command + "\n")
        stdin.flush()
        assert self._line() == "done", f"{command} failed"

    def close(self) -> None:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write("quit\n")
        stdin.flush()
        self.process.wait(30)


def test_ten_thousand_exceptions_one_snapshot_and_the_policy_switch(
    server: ServerProcess,
) -> None:
    api = server.api()

    def groups() -> List[Dict[str, Any]]:
        found: List[Dict[str, Any]] = api.get("/exceptions", params={"service": SERVICE}).json()
        return found

    def total() -> int:
        return sum(g["count"] for g in groups())

    app = App(server)
    try:
        app.send("burst 10000")
        wait_until(lambda: total() == 10_000, 15, "not 10,000 exceptions counted")
        [group] = groups()
        assert group["exc_type"] == "ValueError" and group["services"] == [SERVICE]
        events = api.get(f"/exceptions/{group['fingerprint']}", params={"events": 200}).json()
        with_locals = [e for e in events["events"] if e["frames"] and "locals" in e["frames"][0]]
        [snapshot] = with_locals
        assert snapshot["frames"][0]["locals"]["card"]["v"] == "visa"
        assert snapshot["message"] == "('card declined', 'visa')"

        policy = api.get(f"/services/{SERVICE}/policy").json()
        api.put(f"/services/{SERVICE}/policy", json={**policy, "capture_exceptions": False})
        app.send("wait off")
        app.send("burst 50")
        api.put(f"/services/{SERVICE}/policy", json={**policy, "capture_exceptions": True})
        app.send("wait on")
        app.send("burst 5")
        wait_until(lambda: total() == 10_005, 15, "not 10,005 exceptions counted")
    finally:
        app.close()
    assert total() == 10_005  # the 50 raised while capture was off were never counted
