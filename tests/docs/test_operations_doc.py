"""docs/operations.md names every metric the server exports and every server setting."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from peephole.server.metrics import Metrics
from peephole.server.settings import ServerSettings

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]


def test_every_metric_is_documented() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    names = [f"peephole_{item.name}" for item in fields(Metrics)]
    names += ["peephole_agents_connected", "peephole_stream_subscribers"]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/operations.md does not mention {missing}"


def test_every_server_setting_is_documented() -> None:
    pages = "".join(
        (ROOT / "docs" / page).read_text() for page in ("operations.md", "limits.md", "security.md")
    )
    internal = {"retention_interval", "housekeeping_interval"}  # tuning knobs for tests
    missing = [
        item.name
        for item in fields(ServerSettings)
        if item.name not in internal
        and f"--{item.name.replace('_', '-')}" not in pages
        and f"PEEPHOLE_SERVER_{item.name.upper()}" not in pages
    ]
    assert not missing, f"no page of docs/ explains the server settings {missing}"
