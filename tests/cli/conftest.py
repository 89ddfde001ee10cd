"""Fixtures for CLI tests: an isolated user config, and the CLI run in-process.

The server-process fixtures live in ``server_process.py`` (used by the slow tests).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.server_process import ADMIN_TOKEN, ServerProcess
from peephole.cli.main import run


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs ``peephole ARGS`` in this process, the way the entry point does."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: str) -> Result:
        self._capsys.readouterr()
        code = run(list(args))
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture(autouse=True)
def isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real user config and no PEEPHOLE_* variables leak into a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("PEEPHOLE_URL", "PEEPHOLE_TOKEN", "COLUMNS", "NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return home / ".config" / "peephole" / "config.json"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server process for the session's slow tests."""
    pytest.importorskip("peephole.server.app")
    process = ServerProcess(tmp_path_factory.mktemp("server")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def logged_in(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """PEEPHOLE_URL and PEEPHOLE_TOKEN point at the test server as its admin."""
    monkeypatch.setenv("PEEPHOLE_URL", server.url)
    monkeypatch.setenv("PEEPHOLE_TOKEN", ADMIN_TOKEN)
    return server
