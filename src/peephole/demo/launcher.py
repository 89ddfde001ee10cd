"""``python -m peephole.demo.launcher``: a server, the shop under the agent, and traffic.

What ``python3 dev.py demo`` runs. Everything it keeps lives in ``.peephole-demo/`` at the
root of the repository (``.peephole-demo-PORT/`` for another ``--port``, or ``--data-dir``;
one demo at a time holds it): the server's database, the credentials it was
seeded with (reused on the next run) and a log file per process. Each child runs in its own
process group, so stopping the demo (Ctrl-C, SIGTERM or a closed terminal) stops whatever
the children started too.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from peephole.demo.shop import checkout

__all__ = [
    "STOP_SECONDS",
    "Child",
    "Credentials",
    "Demo",
    "DemoError",
    "check_port_free",
    "child_environment",
    "default_data_dir",
    "find_root",
    "first_command",
    "free_port",
    "load_credentials",
    "lock_data_dir",
    "probe_hint",
]

HOST = "127.0.0.1"
DEFAULT_PORT = 7777
SERVER_START_SECONDS = 90.0  # the first start creates the database
SHOP_START_SECONDS = 30.0
CONNECT_SECONDS = 10.0
STOP_SECONDS = 6.0  # per child; dev.py gives the launcher 30 s in all
SHOP_PROBE_FILE = "shop/checkout.py"


class DemoError(Exception):
    """Something that keeps the demo from running, said in one line."""


@dataclass
class Credentials:
    admin_token: str
    agent_key: str


@dataclass
class Child:
    """A process the demo started, the leader of its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def running(self) -> bool:
        return self.process.poll() is None


def find_root() -> Path:
    """The repository root (where ``dev.py`` is), else the current directory."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "dev.py").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def load_credentials(data_dir: Path) -> Credentials:
    """The admin token and agent key of the demo's server, made once and kept (mode 0600).

    The server adds seeded credentials it does not have yet, so new ones work with an old
    database too.
    """
    path = data_dir / "credentials.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            return Credentials(saved["admin_token"], saved["agent_key"])
        except (ValueError, KeyError, TypeError):
            raise DemoError(f"{path} is damaged; delete {data_dir} to start afresh") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = Credentials(
        admin_token=f"pht_{secrets.token_hex(20)}", agent_key=f"phk_{secrets.token_hex(20)}"
    )
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(credentials), out, indent=2)
    os.replace(temporary, path)
    return credentials


def default_data_dir(root: Path, port: int) -> Path:
    """``.peephole-demo`` for the default port, ``.peephole-demo-PORT`` for another: two
    demos never share a database (each server would see the other's shop as gone)."""
    return root / (".peephole-demo" if port == DEFAULT_PORT else f".peephole-demo-{port}")


def lock_data_dir(data_dir: Path, server_url: str) -> IO[str]:
    """Hold ``data_dir`` for this demo until the returned file is closed (or the process
    ends), or refuse, naming the demo that holds it."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "demo.lock", "a+")  # noqa: SIM115 - held until the demo ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise DemoError(
            f"another demo ({holder}) is using {data_dir}; stop it with Ctrl-C in its "
            "terminal, or give this one its own --data-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(server_url)
    lock.flush()
    return lock


def probe_hint() -> Tuple[str, int, str]:
    """Where the first tracepoint of the tour goes: the line that prices a coupon per line."""
    lines, first = inspect.getsourcelines(checkout.coupon_discount_cents)
    for offset, text in enumerate(lines):
        if "coupon.rates[" in text:
            return SHOP_PROBE_FILE, first + offset, "line.product.category not in coupon.rates"
    raise DemoError("checkout.coupon_discount_cents no longer reads coupon.rates")


def first_command(probe_file: str, line: int, condition: str) -> str:
    return f"peephole tracepoint add {probe_file}:{line} --condition {shlex.quote(condition)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int) -> None:
    """Fail early, with what to do, when something listens on ``port`` already. (Like the
    server, allow the address to be reused: closed connections of a past run do not count.)"""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            raise DemoError(
                f"port {port} is already in use (is a demo still running?); "
                "choose another with --port"
            ) from None


def peephole_command(*args: str) -> List[str]:
    """The ``peephole`` CLI of this interpreter's environment."""
    return [sys.executable, "-m", "peephole.cli.main", *args]


def child_environment() -> Dict[str, str]:
    """This environment without ``PEEPHOLE_*`` settings, which would change the demo's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def get_json(url: str, token: Optional[str] = None, timeout: float = 2.0) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def answers_html(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return "text/html" in response.headers.get("Content-Type", "")
    except (OSError, ValueError):
        return False


def die_with_parent() -> Optional[Callable[[], None]]:
    """On Linux, what a child runs before ``exec`` to get SIGTERM if the launcher dies
    without cleaning up (killed with SIGKILL, say). Prepared here, in the parent, so the
    child between fork and exec only makes one system call.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_parent_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_parent_death_signal


class Demo:
    """Starts the demo's processes in order, watches them, and stops them all."""

    credentials: Credentials  # loaded by start()

    def __init__(
        self,
        root: Path,
        port: int,
        traffic: bool,
        shop_port: Optional[int],
        data_dir: Optional[Path] = None,
    ) -> None:
        self.root = root
        self.port = port
        self.traffic = traffic
        self.shop_port = shop_port or free_port()
        self.data_dir = data_dir or default_data_dir(root, port)
        self.log_dir = self.data_dir / "logs"
        self.server_url = f"http://{HOST}:{port}"
        self.shop_url = f"http://{HOST}:{self.shop_port}"
        self.children: List[Child] = []
        self.stop_requested = False
        self.lock: Optional[IO[str]] = None

    # --- running ---------------------------------------------------------------------

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._request_stop) for sig in _STOP_SIGNALS}
        try:
            self.start()
            if self.stop_requested:
                return 130
            self.print_welcome()
            return self.watch()
        except DemoError as exc:
            print(f"demo: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop_all()
            if self.lock is not None:
                self.lock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self) -> None:
        check_port_free(self.port)
        self.lock = lock_data_dir(self.data_dir, self.server_url)
        self.credentials = load_credentials(self.data_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        print(f"==> starting the peephole server on {self.server_url}", flush=True)
        server = self.spawn(
            "server",
            peephole_command(
                "server",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir / "server"),
                "--admin-token",
                self.credentials.admin_token,
                "--agent-key",
                self.credentials.agent_key,
            ),
        )
        self.wait_until(server, SERVER_START_SECONDS, self._server_answers)
        if self.stop_requested:
            return
        print(f"==> starting the shop on {self.shop_url} under the agent", flush=True)
        shop = self.spawn(
            "shop",
            peephole_command(
                "run",
                "--service",
                "shop",
                "--env",
                "demo",
                "--version",
                "1.0.0",
                "--server",
                self.server_url,
                "--key",
                self.credentials.agent_key,
                "--",
                sys.executable,
                "-m",
                "peephole.demo.shop",
                "--host",
                HOST,
                "--port",
                str(self.shop_port),
            ),
        )
        self.wait_until(shop, SHOP_START_SECONDS, self._shop_answers)
        if self.stop_requested:
            return
        if not self._wait_for_agent(shop):
            print(
                f"demo: the shop's agent has not connected yet; see {self.log_path(shop)}",
                flush=True,
            )
        if self.traffic:
            self.spawn(
                "traffic",
                [
                    sys.executable,
                    "-m",
                    "peephole.demo.traffic",
                    "--url",
                    self.shop_url,
                ],
            )

    def watch(self) -> int:
        """Wait for Ctrl-C or SIGTERM; a child that dies on its own ends the demo."""
        while not self.stop_requested:
            for child in self.children:
                code = child.process.poll()
                if code is None:
                    continue
                if child.name == "traffic" and code == 0:
                    print("demo: the traffic generator reached its limit and stopped", flush=True)
                    self.children.remove(child)
                    child.log_file.close()
                    break
                raise DemoError(self._died(child))
            time.sleep(0.3)
        print("\n==> stopping", flush=True)
        return 0

    # --- children --------------------------------------------------------------------

    def spawn(self, name: str, command: List[str]) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "wb")  # noqa: SIM115 - closed in stop_all
        header = shlex.join(command).replace("\n", "\\n")  # one line, whatever the command
        log_file.write(f"$ {header}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            command,
            cwd=self.root,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        """Stop the children newest first (traffic, shop, server), so the agent can still
        send its last events; SIGTERM each process group, SIGKILL it after a while."""
        children, self.children = list(reversed(self.children)), []
        for child in children:
            _signal_group(child.process.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_SECONDS
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while _group_exists(child.process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _group_exists(child.process.pid):
                print(
                    f"demo: the {child.name} did not stop in {STOP_SECONDS:g} s; killing it",
                    flush=True,
                )
                _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()
            child.log_file.close()

    def wait_until(self, child: Child, seconds: float, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop_requested:
            if ready():
                return
            if not child.running():
                raise DemoError(self._died(child))
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the {child.name} did not answer within {seconds:g} s; "
                    f"see {self.log_path(child)}"
                )
            time.sleep(0.2)

    def log_path(self, child: Child) -> str:
        return os.path.relpath(child.log_path)

    def _died(self, child: Child) -> str:
        lines = child.log_path.read_text(errors="replace").splitlines()[-15:]
        tail = "\n".join(f"    {line}" for line in lines)
        return (
            f"the {child.name} exited (code {child.process.returncode}); "
            f"the end of {self.log_path(child)}:\n{tail}"
        )

    def _server_answers(self) -> bool:
        try:
            status: object = get_json(f"{self.server_url}/api/v1/health").get("status")
            return status == "ok"
        except (OSError, ValueError, AttributeError):
            return False

    def _shop_answers(self) -> bool:
        try:
            status: object = get_json(f"{self.shop_url}/health").get("status")
            return status == "ok"
        except (OSError, ValueError, AttributeError):
            return False

    def _wait_for_agent(self, shop: Child) -> bool:
        deadline = time.monotonic() + CONNECT_SECONDS
        url = f"{self.server_url}/api/v1/instances?service=shop"
        while time.monotonic() < deadline and not self.stop_requested and shop.running():
            try:
                instances = get_json(url, self.credentials.admin_token)
            except (OSError, ValueError):
                instances = []
            if any(i.get("connected") and i.get("pid") for i in instances):
                return True
            time.sleep(0.3)
        return False

    def _request_stop(self, signum: int, frame: Optional[FrameType]) -> None:
        self.stop_requested = True

    # --- telling the person ----------------------------------------------------------

    def print_welcome(self) -> None:
        token = self.credentials.admin_token
        probe_file, line, condition = probe_hint()
        in_venv = sys.prefix != sys.base_prefix
        activate = Path(sys.executable).parent / "activate"
        logs = os.path.relpath(self.log_dir)
        rows = [("server", self.server_url)]
        web_ui = answers_html(f"{self.server_url}/")
        if web_ui:
            rows.append(("web UI", f"{self.server_url}/  (sign in with the admin token below)"))
        rows += [
            ("shop", f"{self.shop_url}  (service 'shop', env 'demo', version 1.0.0)"),
            ("traffic", "a few requests a second" if self.traffic else "off (--no-traffic)"),
            ("logs", f"{logs}/"),
            ("admin token", token),
        ]
        width = max(len(label) for label, _ in rows)
        print("\npeephole demo is running\n")
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
        if web_ui:
            print(
                f"\nIn the browser: open {self.server_url}/, sign in with the admin token, "
                f"open the service 'shop', the file {probe_file}, and click line {line}."
            )
        print("\nOr in another terminal:\n" if web_ui else "\nIn another terminal:\n")
        if in_venv:
            print(f"  source {shlex.quote(str(activate))}")
        print(f"  export PEEPHOLE_URL={self.server_url} PEEPHOLE_TOKEN={token}")
        print(f"  {first_command(probe_file, line, condition)}")
        print("  peephole snapshots list")
        print("  peephole snapshots show <ID>")
        print(
            f"\nThe tour: {os.path.relpath(self.root / 'docs' / 'quickstart.md')}."
            " Ctrl-C stops everything.",
            flush=True,
        )


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_exists(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # the process has just exited
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peephole.demo.launcher", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the server's port")
    parser.add_argument("--shop-port", type=int, default=None, help="default: a free port")
    parser.add_argument("--no-traffic", action="store_true", help="do not generate traffic")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the database, credentials and logs go "
        "[default: .peephole-demo in the repository; "
        ".peephole-demo-PORT for another --port]",
    )
    args = parser.parse_args(argv)
    demo = Demo(find_root(), args.port, not args.no_traffic, args.shop_port, args.data_dir)
    return demo.run()


if __name__ == "__main__":
    sys.exit(main())
