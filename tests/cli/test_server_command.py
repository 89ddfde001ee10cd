"""``peephole server`` as a newcomer starts and stops it: a busy port loses no credentials,
Ctrl-C is a clean exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from e2e.server_process import free_port
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.server]


def server_command(port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "peephole.cli.main",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}


def wait_for_health(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    def healthy() -> bool:
        assert process.poll() is None, process.communicate()
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout, "the server did not answer", interval=0.1)


def test_a_busy_port_creates_no_credentials(tmp_path: Path) -> None:
    """Before: the database and credentials were made, printed "shown once", then the bind
    failed, and the next start printed none."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            server_command(port, tmp_path),
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )
    assert done.returncode == 1, done
    assert "shown once" not in done.stdout + done.stderr
    assert not (tmp_path / "peephole.db").exists()
    assert f"127.0.0.1:{port} is already in use" in done.stderr
    assert "--admin-token" in done.stderr  # how to recover lost credentials
    assert done.stderr.count("\n") <= 2, done.stderr  # a message, not a traceback
    port = free_port()
    process = subprocess.Popen(
        server_command(port, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert out.count("shown once") == 2, out  # the admin token and the agent key


def test_ctrl_c_is_a_clean_exit(tmp_path: Path) -> None:
    """Before: "error: aborted" and exit 1 after a clean shutdown."""
    port = free_port()
    process = subprocess.Popen(
        server_command(port, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "aborted" not in err.lower(), err
    assert "Traceback" not in err and "ERROR" not in err, err
