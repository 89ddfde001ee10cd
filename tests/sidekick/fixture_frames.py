"""The frames in ``fixtures/*.jsonl`` (recorded from the real agents by ``record.py``, and the
protocol note's examples), for the translation tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
Frame = dict[str, Any]


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.jsonl"))


def entries(path: Path) -> list[Frame]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def frames(direction: str, name: str | None = None) -> list[tuple[str, Frame]]:
    """(fixture file name, frame) for every frame sent by ``direction`` (``agent``,
    ``broker``, ``upgrade``), of message ``name`` when given."""
    found = []
    for path in fixture_files():
        for entry in entries(path):
            frame = entry["frame"]
            if entry["dir"] == direction and (name is None or frame.get("name") == name):
                found.append((path.name, frame))
    return found


def runtime_of(fixture: str) -> str:
    """``node`` or ``python``, from the fixture's upgrade headers."""
    for entry in entries(FIXTURES / fixture):
        if entry["dir"] == "upgrade":
            return "node" if entry["frame"]["x-sidekick-app-runtime"] == "nodejs" else "python"
    raise AssertionError(f"{fixture} has no upgrade")
