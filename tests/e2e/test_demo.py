"""The README's run command, from a clean copy of the repository, as a newcomer runs it.

``python3 dev.py demo`` in a copy without ``.venv``: it builds its environment, starts the
server, the shop under the agent and traffic. A tracepoint placed with the copy's own CLI
produces a snapshot; Ctrl-C (SIGINT to the foreground process group, as a terminal sends it)
stops everything, and no process of the copy is left. A second run reuses the environment,
the credentials and the database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from peephole.demo.launcher import default_data_dir, free_port
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BUILD_SECONDS = 420.0  # creating .venv and installing the project with its dev extras
START_SECONDS = 90.0
SNAPSHOT_SECONDS = 90.0
STOP_SECONDS = 45.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def clean_copy(tmp_path: Path) -> Iterator[Path]:
    """The repository as a fresh clone would have it: no environments, no demo data."""
    copy = tmp_path / "peephole"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".venvs",
            ".peephole-demo*",
            "__pycache__",
            "*.egg-info",
            ".pytest_cache",
            ".mypy_cache",
            ".ruff_cache",
            ".hypothesis",
            "node_modules",
            "build",
            "dist",
        ),
    )
    yield copy
    for pid in processes_of(copy):  # only when the test failed half-way
        _kill(pid)


def processes_of(copy: Path) -> List[int]:
    """Live processes whose command line mentions the copy (zombies have none)."""
    found = []
    needle = str(copy).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # it exited while we looked
    return [pid for pid in found if pid != os.getpid()]


def start_demo(copy: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python3 dev.py demo --port PORT`` in its own process group, as a terminal runs it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PEEPHOLE_", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "dev.py", "demo", "--port", str(port)],
            cwd=copy,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(
    what: str, seconds: float, check: Callable[[], Any], process: subprocess.Popen[bytes], log: Path
) -> Any:
    def running_check() -> Any:
        result = check()
        if not result and process.poll() is not None:
            pytest.fail(f"the demo exited ({process.returncode}) before {what}:\n{log.read_text()}")
        return result

    return wait_until(
        running_check, seconds, lambda: f"no {what}:\n{log.read_text()[-4000:]}", interval=0.5
    )


def health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as r:
            return bool(json.loads(r.read())["status"] == "ok")
    except (OSError, ValueError, KeyError):
        return False


def peephole(copy: Path, port: int, token: str, *args: str) -> Any:
    env = dict(os.environ, PEEPHOLE_URL=f"http://127.0.0.1:{port}", PEEPHOLE_TOKEN=token)
    result = subprocess.run(
        [str(copy / ".venv" / "bin" / "peephole"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stop_like_ctrl_c(process: subprocess.Popen[bytes], log: Path) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not stop within {STOP_SECONDS:g} s:\n{log.read_text()}")


def assert_nothing_left(copy: Path) -> None:
    deadline = time.monotonic() + 5
    while processes_of(copy) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: _cmdline(pid) for pid in processes_of(copy)}
    assert not left, f"processes left behind: {left}"


def test_the_readme_run_command_from_a_clean_copy(clean_copy: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    demo = start_demo(clean_copy, port, log)
    started: List[subprocess.Popen[bytes]] = [demo]
    try:
        wait_for("server", BUILD_SECONDS + START_SECONDS, lambda: health(port), demo, log)
        wait_for(
            "banner", START_SECONDS, lambda: "Ctrl-C stops everything" in log.read_text(), demo, log
        )
        data_dir = default_data_dir(clean_copy, port)  # .peephole-demo-PORT: not 7777
        credentials = json.loads((data_dir / "credentials.json").read_text())
        token = credentials["admin_token"]
        banner = log.read_text()
        assert f"export PEEPHOLE_URL=http://127.0.0.1:{port} PEEPHOLE_TOKEN={token}" in banner
        first = re.search(r"^  (peephole tracepoint add shop/checkout\.py:\d+ .*)$", banner, re.M)
        assert first, banner
        suggested = peephole(clean_copy, port, token, *shlex.split(first.group(1))[1:])
        assert suggested["summary"] == "active on 1 of 1 instance", suggested

        line = _line_of(clean_copy, "shop/checkout.py", "inventory.reserve(cart.lines)")
        probe = peephole(
            clean_copy,
            port,
            token,
            "tracepoint",
            "add",
            f"shop/checkout.py:{line}",
            "--service",
            "shop",
        )
        snapshots = wait_for(
            "snapshot",
            SNAPSHOT_SECONDS,
            lambda: peephole(clean_copy, port, token, "snapshots", "list", "--probe", probe["id"])[
                "events"
            ],
            demo,
            log,
        )
        assert snapshots[0]["line"] == line
        assert snapshots[0]["frames"][0]["function"] == "checkout"

        assert stop_like_ctrl_c(demo, log) == 0
        assert_nothing_left(clean_copy)

        # Again: the environment, the credentials and the database are reused.
        first_run = len(log.read_text())
        again = start_demo(clean_copy, port, log)
        started.append(again)
        wait_for("server on the second run", START_SECONDS, lambda: health(port), again, log)
        wait_for(
            "banner on the second run",
            START_SECONDS,
            lambda: "Ctrl-C stops everything" in log.read_text()[first_run:],
            again,
            log,
        )
        assert "preparing .venv" not in log.read_text()[first_run:]
        ids = [p["id"] for p in peephole(clean_copy, port, token, "probes", "list")]
        assert probe["id"] in ids
        assert stop_like_ctrl_c(again, log) == 0
        assert_nothing_left(clean_copy)
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _line_of(copy: Path, probe_file: str, statement: str) -> int:
    source = (copy / "src" / "peephole" / "demo" / probe_file).read_text().splitlines()
    return next(n for n, text in enumerate(source, 1) if text.strip() == statement)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
