"""docs/agent-settings.md lists every agent setting with its variable, so it cannot drift."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from peephole.agent.config import ENV_PREFIX, AgentConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-settings.md"
ROW = re.compile(r"^\| `(\w+)` \| ([^|]+) \|", re.MULTILINE)


def documented() -> dict[str, str]:
    return {name: variable.strip() for name, variable in ROW.findall(DOC.read_text())}


@pytest.mark.parametrize("name", [f.name for f in fields(AgentConfig)])
def test_every_setting_is_documented_with_its_variable(name: str) -> None:
    rows = documented()
    assert name in rows, f"docs/agent-settings.md has no row for {name!r}"
    if name != "limits":  # set in code only: AgentConfig.load does not read it from a variable
        assert f"`{ENV_PREFIX}{name.upper()}`" in rows[name]


def test_the_doc_lists_no_setting_that_does_not_exist() -> None:
    known = {f.name for f in fields(AgentConfig)}
    assert set(documented()) <= known
