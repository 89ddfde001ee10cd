"""Fixtures for the agent's tests: a real :class:`Agent` with a collecting sink, and helpers
to find the lines of the target modules by their ``# @name`` markers."""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from peephole.agent.clock import REAL, Clock
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.protocol import ProbeSpec, ProbeStatus
from waiting import wait_until

TARGETS = Path(__file__).parent / "targets"
SHOP_PATH = "targets/shop.py"
MONITORING = sys.version_info >= (3, 12)
_MARKER = re.compile(r"@([\w-]+)\s*$")


def line_of(path: Path, marker: str) -> int:
    """The line of ``path`` that ends with the comment marker ``@marker``."""
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        found = _MARKER.search(text)
        if found and found.group(1) == marker:
            return number
    raise LookupError(f"no @{marker} in {path}")


def shop_line(marker: str) -> int:
    return line_of(TARGETS / "shop.py", marker)


class Collector:
    """A sink that keeps every batch and lets a test wait for events."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.batches = 0
        self.accept = True
        self._changed = threading.Condition()

    def __call__(self, batch: List[Dict[str, Any]]) -> Optional[bool]:
        if not self.accept:
            return False
        with self._changed:
            self.events.extend(batch)
            self.batches += 1
            self._changed.notify_all()
        return True

    def of(self, probe_id: str) -> List[Dict[str, Any]]:
        return [e for e in self.events if e.get("probe_id") == probe_id]

    def wait(self, count: int, timeout: float = 5.0, probe_id: Optional[str] = None) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                have = len(self.of(probe_id)) if probe_id else len(self.events)
                if have >= count:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)


wait_for = wait_until  # the name this folder's tests import it by


def tracepoint(probe_id: str, file: str, line: int, **fields: Any) -> ProbeSpec:
    return ProbeSpec(id=probe_id, kind="tracepoint", file=file, line=line, **fields)


def logpoint(probe_id: str, file: str, line: int, template: str, **fields: Any) -> ProbeSpec:
    return ProbeSpec(
        id=probe_id, kind="logpoint", file=file, line=line, template=template, **fields
    )


def state_of(agent: Agent, probe_id: str) -> str:
    status = agent.status(probe_id)
    assert status is not None
    if status.state == "error":
        return f"error: {status.message}"
    return status.state


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def make_agent(collector: Collector) -> Iterator[Callable[..., Agent]]:
    """Build started agents (``make_agent(snapshot_rate=100)``, ``make_agent(clock, ...)``);
    all are stopped after."""
    made: List[Agent] = []

    def make(clock: Clock = REAL, **settings: Any) -> Agent:
        settings.setdefault("service", "tests")
        agent = Agent(AgentConfig(**settings), sink=collector, clock=clock)
        agent.start()
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()
        backend = agent.backend
        assert backend is None or not backend.armed_codes()


@pytest.fixture
def agent(make_agent: Callable[..., Agent]) -> Agent:
    """An agent whose rates never get in the way of a functional test."""
    return make_agent(snapshot_rate=1000.0, snapshot_process_rate=1000.0, cpu_budget=1.0)


def statuses_by_id(statuses: List[ProbeStatus]) -> Dict[str, ProbeStatus]:
    return {status.probe_id: status for status in statuses}


@pytest.fixture
def module_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on ``sys.path`` for modules a test writes; they are forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]
