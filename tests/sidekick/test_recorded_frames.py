"""The recorded frames in fixtures/ (which the translator's tests replay) still say what the
installed agents do: the same walk against the stand-in broker yields the same kinds of frames,
answers, error codes and lines, and the same identity headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sidekick.apps import NODE_ENV, PYTHON_ENV, installed
from sidekick.record import record
from sidekick.recorder import Frame

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"


def shape(entries: list[Frame]) -> set[tuple[Any, ...]]:
    """What a recording says, without ids, times and order (Python's agent may send a
    snapshot after the next line's event); status events vary in number and are left out."""
    found: set[tuple[Any, ...]] = set()
    for entry in entries:
        frame = entry["frame"]
        if entry["dir"] in ("upgrade", "refused"):
            found.add((entry["dir"], tuple(sorted(k for k in frame if k.startswith("x-sidekick")))))
        elif frame.get("name") != "ApplicationStatusEvent":
            keys = ("name", "erroneous", "errorCode", "lineNo")
            found.add((entry["dir"], *(frame.get(key) for key in keys)))
    return found


@pytest.mark.parametrize(
    ("runtime", "variable", "fixture"),
    [("node", NODE_ENV, "node-0.0.8.jsonl"), ("python", PYTHON_ENV, "python-0.1.2.jsonl")],
)
def test_the_installed_agent_still_sends_what_its_fixture_holds(
    runtime: str, variable: str, fixture: str
) -> None:
    recorded = [json.loads(line) for line in (FIXTURES / fixture).read_text().splitlines()]
    assert shape(record(runtime, installed(variable))) == shape(recorded)
