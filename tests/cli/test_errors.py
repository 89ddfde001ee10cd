"""Failures talking to the server: one line on stderr saying what to do, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli

COMMANDS = [
    ["services"],
    ["instances"],
    ["probes", "list"],
    ["probes", "show", "ab12"],
    ["probes", "disable", "ab12"],
    ["probes", "enable", "ab12"],
    ["probes", "rm", "ab12"],
    ["probes", "edit", "ab12", "--hits", "3"],
    ["snapshots", "list"],
    ["snapshots", "show", "e1"],
    ["events", "tail"],
    ["events", "tail", "--follow"],
    ["exceptions", "list"],
    ["exceptions", "show", "f1"],
    ["tracepoint", "add", "a.py:1"],
    ["tracepoint", "add", "a.py:1", "--service", "shop"],
    ["logpoint", "add", "a.py:1", "x={x}", "-s", "shop"],
    ["login", "--token", "t"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_unreachable_server(cli: Cli, closed_url: str, args: list[str]) -> None:
    result = cli("--url", closed_url, *args)
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        f"error: cannot reach the peephole server at {closed_url} (connection refused); "
        "is `peephole server` running there? Set the address with --url, PEEPHOLE_URL or "
        "`peephole login`\n"
    )


def test_unreachable_url_from_the_environment(
    cli: Cli, closed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEEPHOLE_URL", closed_url + "/")
    result = cli("probes", "list", "--json")
    assert result.code == 1 and f"at {closed_url} (connection refused)" in result.err


def test_failed_login_saves_nothing(cli: Cli, closed_url: str, isolated_config: Path) -> None:
    assert cli("login", "--url", closed_url, "--token", "t").code == 1
    assert not isolated_config.exists()
