"""The small apps the real Sidekick agents run in, started as subprocesses pointed at a
broker on loopback (the recorder, or peephole's server), and where the agents are installed.

``PEEPHOLE_TEST_SIDEKICK_NODE`` (the ``node_modules`` folder holding the npm agent) and
``PEEPHOLE_TEST_SIDEKICK_PYTHON`` (a CPython 3.8 with the PyPI agent) are set by ``dev.py``.
Outside CI a test skips when its agent is not set up; in CI it fails, so a missing install
step cannot pass unseen."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest

HERE = Path(__file__).parent
NODE_APP = HERE / "node_app"
PYTHON_APP = HERE / "py_app"  # no "python" in the path: the agent ignores errors there
NODE_ENV = "PEEPHOLE_TEST_SIDEKICK_NODE"
PYTHON_ENV = "PEEPHOLE_TEST_SIDEKICK_PYTHON"


def installed(variable: str) -> str:
    """The agent install named by ``variable``; skip (locally) or fail (CI) without it."""
    value = os.environ.get(variable, "")
    if value and Path(value).exists():
        return value
    reason = f"{variable} is not set to an installed Sidekick agent (python3 dev.py builds it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def marker_line(path: Path, marker: str) -> int:
    """The 1-based line that carries ``@marker`` in a comment."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.search(rf"(#|//) @{marker}\b", line):
            return number
    raise LookupError(f"no @{marker} in {path}")


class AgentApp:
    """One app process: ``hit()`` runs the probed function once and waits until it returned."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SIDEKICK_", "NODE_"))}
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**base, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._count = 0
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        try:
            self.started = self.expect("agent ")  # "agent started" or "agent failed ..."
        except BaseException:
            self.stop()
            raise

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.output.append(line.rstrip("\n"))
            self._lines.put(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """The next output line that starts with ``prefix`` (the agent's own logs are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._lines.empty()):
                raise TimeoutError(f"no {prefix!r} from the app; it printed:\n" + self.log())
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    def hit(self, command: str = "go") -> str:
        """Run one checkout (``vip``) or error (``boom``) and wait for the app to finish it."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        self._count += 1
        return self.expect(f"done {self._count} ")

    def log(self) -> str:
        return "\n".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def node_app(node_modules: str, port: int, api_key: str, **extra: str) -> AgentApp:
    """The Node app with the npm agent, pointed at ``ws://127.0.0.1:<port>/app``."""
    env = {
        "NODE_PATH": node_modules,
        "SIDEKICK_APIKEY": api_key,
        "SIDEKICK_AGENT_BROKER_HOST": "ws://127.0.0.1",
        "SIDEKICK_AGENT_BROKER_PORT": str(port),
        "SIDEKICK_AGENT_APPLICATION_NAME": "demo-node",
        "SIDEKICK_AGENT_APPLICATION_STAGE": "dev",
        "SIDEKICK_AGENT_APPLICATION_VERSION": "1.2.3",
        "SIDEKICK_AGENT_APPLICATION_TAG_team": "core",
        **extra,
    }
    return AgentApp(["node", "app.js"], NODE_APP, env)


def python_app(python: str, port: int, api_key: str, **extra: str) -> AgentApp:
    """The Python app with the PyPI agent on CPython 3.8, pointed at the same kind of URL."""
    env = {
        "PYTHONUNBUFFERED": "1",
        "SIDEKICK_APIKEY": api_key,
        "SIDEKICK_BROKER_HOST": "ws://127.0.0.1",
        "SIDEKICK_BROKER_PORT": str(port),
        "SIDEKICK_APPLICATION_NAME": "demo-python",
        "SIDEKICK_APPLICATION_STAGE": "dev",
        "SIDEKICK_APPLICATION_VERSION": "1.2.3",
        "SIDEKICK_APPLICATION_TAG_PREFIX_TEAM": "core",  # sent as x-sidekick-app-tag-.team
        **extra,
    }
    return AgentApp([python, "main.py"], PYTHON_APP, env)
