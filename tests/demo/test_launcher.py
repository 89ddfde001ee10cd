"""The launcher's parts that do not need a running server."""

from __future__ import annotations

import ast
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peephole.demo import launcher
from peephole.demo.shop import checkout


def test_the_first_command_points_at_the_line_that_fails() -> None:
    probe_file, line, condition = launcher.probe_hint()
    source = Path(checkout.__file__).read_text().splitlines()
    assert Path(checkout.__file__).as_posix().endswith(probe_file)
    assert source[line - 1].strip() == "rate = coupon.rates[line.product.category]"
    ast.parse(condition, mode="eval")
    assert launcher.first_command(probe_file, line, condition) == (
        f"peephole tracepoint add shop/checkout.py:{line} "
        "--condition 'line.product.category not in coupon.rates'"
    )


def test_credentials_are_made_once_private_and_reused(tmp_path: Path) -> None:
    first = launcher.load_credentials(tmp_path / "demo")
    saved = tmp_path / "demo" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert first.admin_token.startswith("pht_") and first.agent_key.startswith("phk_")
    assert launcher.load_credentials(tmp_path / "demo") == first
    assert launcher.load_credentials(tmp_path / "other") != first


def test_damaged_credentials_are_reported_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text('{"admin_token": ')
    with pytest.raises(launcher.DemoError, match="delete"):
        launcher.load_credentials(tmp_path)


def test_a_busy_port_is_reported_with_what_to_do() -> None:
    port = launcher.free_port()
    launcher.check_port_free(port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(launcher.DemoError, match="--port"):
            launcher.check_port_free(port)


def test_children_do_not_inherit_peephole_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEEPHOLE_SERVER_DATABASE", "postgresql://elsewhere/db")
    monkeypatch.setenv("PEEPHOLE_TOKEN", "someone-else")
    env = launcher.child_environment()
    assert not [name for name in env if name.startswith("PEEPHOLE_")]
    assert env["PATH"] == os.environ["PATH"]


def test_the_repository_root_is_found() -> None:
    root = launcher.find_root()
    assert (root / "dev.py").is_file()
    assert (root / "src" / "peephole" / "demo" / "launcher.py").is_file()


def test_stopping_reaches_grandchildren_in_the_process_group(tmp_path: Path) -> None:
    """A child that started its own child: both are gone after stop_all()."""
    demo = launcher.Demo(tmp_path, port=launcher.free_port(), traffic=False, shop_port=1)
    demo.log_dir.mkdir(parents=True)
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = demo.spawn("sleeper", [sys.executable, "-c", script])
    grandchild = int(_first_output_line(child))
    assert launcher._group_exists(child.process.pid)
    started = time.monotonic()
    demo.stop_all()
    assert time.monotonic() - started < launcher.STOP_SECONDS
    assert not launcher._group_exists(child.process.pid)
    assert not _alive(grandchild)


def test_a_child_that_ignores_sigterm_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launcher, "STOP_SECONDS", 1.0)
    demo = launcher.Demo(tmp_path, port=launcher.free_port(), traffic=False, shop_port=1)
    demo.log_dir.mkdir(parents=True)
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = demo.spawn("stubborn", [sys.executable, "-c", script])
    assert _first_output_line(child) == "ready"
    demo.stop_all()
    assert child.process.returncode == -9
    assert not launcher._group_exists(child.process.pid)


def _first_output_line(child: launcher.Child) -> str:
    """What the child printed first (the log's first line is the command)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = child.log_path.read_text().splitlines()
        if len(lines) > 1:
            return lines[1]
        time.sleep(0.05)
    raise AssertionError(f"{child.name} printed nothing")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_launcher_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    """With the port taken, the launcher says so and what to do, starts nothing, exits 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "peephole.demo.launcher",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "demo"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "--port" in result.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux only")
def test_children_get_sigterm_when_the_launcher_is_killed(tmp_path: Path) -> None:
    """Even a launcher killed with SIGKILL leaves no child behind."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from peephole.demo import launcher\n"
        "demo = launcher.Demo(Path(sys.argv[1]), launcher.free_port(), False, 1)\n"
        "demo.log_dir.mkdir(parents=True)\n"
        "child = demo.spawn('orphan', [sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())
    assert _alive(orphan)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(orphan)


def test_a_demo_on_another_port_has_its_own_data(tmp_path: Path) -> None:
    """Before: a second demo on --port 8000 used the first one's database, so each server
    showed the other's shop as disconnected."""
    first = launcher.Demo(tmp_path, 7777, False, None)
    second = launcher.Demo(tmp_path, 8000, False, None)
    assert first.data_dir == tmp_path / ".peephole-demo"
    assert second.data_dir != first.data_dir
    assert second.data_dir.parent == tmp_path


def test_a_second_demo_on_the_same_data_refuses(tmp_path: Path) -> None:
    held = launcher.lock_data_dir(tmp_path / "demo", "http://127.0.0.1:7777")
    try:
        with pytest.raises(launcher.DemoError) as refused:
            launcher.lock_data_dir(tmp_path / "demo", "http://127.0.0.1:8000")
        message = str(refused.value)
        assert "another demo (http://127.0.0.1:7777) is using" in message
        assert "--data-dir" in message
    finally:
        held.close()
    launcher.lock_data_dir(tmp_path / "demo", "http://127.0.0.1:8000").close()
