"""``peephole run``: the environment it builds, and real programs under it (a plain script,
gunicorn with 3 workers with and without ``--preload``) talking to a real server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from peephole.agent.config import ConfigError
from peephole.cli.run import BOOTSTRAP_DIR, run_command, run_environment
from waiting import wait_until

from .server_process import AGENT_KEY, ServerProcess, clean_env, free_port

# --- the environment ---------------------------------------------------------------------------


def test_flags_become_peephole_variables_and_win_over_existing_ones() -> None:
    environ = run_environment(
        service="shop",
        env="prod",
        version="1.4",
        tags=["team=pay", "region=eu"],
        server="http://127.0.0.1:7777",
        key="k",
        wait=2,
        base={"PEEPHOLE_SERVICE": "old", "PEEPHOLE_ENV": "staging", "HOME": "/h"},
    )
    assert environ["PEEPHOLE_SERVICE"] == "shop"
    assert environ["PEEPHOLE_ENVIRONMENT"] == "prod"
    assert "PEEPHOLE_ENV" not in environ
    assert environ["PEEPHOLE_VERSION"] == "1.4"
    assert environ["PEEPHOLE_TAGS"] == "team=pay,region=eu"
    assert environ["PEEPHOLE_SERVER"] == "http://127.0.0.1:7777"
    assert environ["PEEPHOLE_KEY"] == "k"
    assert float(environ["PEEPHOLE_WAIT"]) == 2.0
    assert environ["HOME"] == "/h"


def test_unset_flags_leave_the_environment_alone() -> None:
    base = {"PEEPHOLE_SERVICE": "from-env", "PEEPHOLE_TAGS": "a=1"}
    environ = run_environment(base=base)
    assert environ["PEEPHOLE_SERVICE"] == "from-env"
    assert environ["PEEPHOLE_TAGS"] == "a=1"
    assert "PEEPHOLE_SERVER" not in environ


def test_tag_flags_add_to_the_tags_variable() -> None:
    environ = run_environment(tags=["b=2", "a=9"], base={"PEEPHOLE_TAGS": "a=1,c=3"})
    assert environ["PEEPHOLE_TAGS"] == "a=9,c=3,b=2"


def test_the_bootstrap_goes_first_on_the_python_path_once() -> None:
    environ = run_environment(base={"PYTHONPATH": os.pathsep.join(["/app", BOOTSTRAP_DIR])})
    assert environ["PYTHONPATH"] == os.pathsep.join([BOOTSTRAP_DIR, "/app"])
    assert Path(BOOTSTRAP_DIR, "sitecustomize.py").is_file()
    assert run_environment(base={})["PYTHONPATH"] == BOOTSTRAP_DIR


@pytest.mark.parametrize(
    "flags",
    [
        {"tags": ["no-equals-sign"]},
        {"base": {"PEEPHOLE_WAIT": "later"}},
        {"base": {"PEEPHOLE_CAPTURE_EXCEPTIONS": "maybe"}},
        {"server": "ftp://files.example"},
    ],
)
def test_a_bad_setting_is_refused_before_the_program_starts(flags: Dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        run_environment(**flags)


def test_run_command_reports_what_it_cannot_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command([]) == 2
    assert run_command(["peephole-no-such-program-xyz"]) == 127
    assert "command not found: peephole-no-such-program-xyz" in capsys.readouterr().err
    assert run_command(["python"], tags=["bad"]) == 2
    assert "bad" in capsys.readouterr().err


def test_run_command_execs_the_program_with_the_agent(tmp_path: Path) -> None:
    script = tmp_path / "show.py"
    script.write_text(
        textwrap.dedent("""
        import os, peephole
        agent = peephole.current_agent()
        print(os.getpid(), agent.config.service, agent.config.environment, agent.config.tags)
    """)
    )
    launcher = (
        "import os, sys; from peephole.cli.run import run_command; print(os.getpid(), "
        "flush=True); sys.exit(run_command(sys.argv[1:], service='execd', env='qa', "
        "tags=['k=v']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher, sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    pid, service, environment, tags = after.split(" ", 3)
    assert pid == before  # exec: the program is this same process
    assert (service, environment, tags) == ("execd", "qa", "{'k': 'v'}")


# --- real programs against a real server --------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.api() as client:
        yield client


def connected(api: httpx.Client, service: str) -> List[Dict[str, Any]]:
    """The instances of ``service`` connected now."""
    response = api.get("/instances", params={"service": service})
    response.raise_for_status()
    return [i for i in response.json() if i["connected"]]


def peephole_run(*args: str) -> List[str]:
    return [sys.executable, "-m", "peephole.cli.main", "run", *args]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


WSGI_APP = textwrap.dedent(
    """
    import time

    def application(environ, start_response):
        cart = [3, 4, 5]
        total = sum(cart)
        time.sleep(0.05)  # @probe
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(total).encode()]
    """
)


def probe_line(source: str) -> int:
    return next(n for n, text in enumerate(source.splitlines(), 1) if text.endswith("# @probe"))


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(180)
@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-load", "preload"])
def test_gunicorn_workers_each_register_and_get_probes(
    server: ServerProcess, api: httpx.Client, tmp_path: Path, preload: bool
) -> None:
    service = f"gshop-{'preload' if preload else 'lazy'}"
    (tmp_path / "wsgi_shop.py").write_text(WSGI_APP)
    port = free_port()
    command = peephole_run(
        "--service",
        service,
        "--env",
        "e2e",
        "--tag",
        "kind=gunicorn",
        "--server",
        server.url,
        "--key",
        AGENT_KEY,
        "--",
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "3",
        "-b",
        f"127.0.0.1:{port}",
        *(["--preload"] if preload else []),
        "wsgi_shop:application",
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=clean_env()
        )
    try:
        # The master is this process (peephole run execs); the workers are its forks.
        def workers() -> List[Dict[str, Any]]:
            assert process.poll() is None, log_path.read_text()
            found = [i for i in connected(api, service) if i["pid"] != process.pid]
            return found if len(found) == 3 else []

        registered = wait_until(workers, 60, "3 gunicorn workers to register")
        worker_ids = {i["instance_id"] for i in registered}
        assert len(worker_ids) == 3
        assert len({i["pid"] for i in registered}) == 3
        for instance in registered:
            assert instance["environment"] == "e2e"
            assert instance["tags"] == {"kind": "gunicorn"}

        created = api.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": "wsgi_shop.py",
                "line": probe_line(WSGI_APP),
                "hit_limit": 200,
                "target": {"service": service},
            },
        )
        assert created.status_code == 201, created.text
        probe_id = created.json()["id"]

        def active_on_workers() -> bool:
            probe = api.get(f"/probes/{probe_id}").json()
            active = {s["instance_id"] for s in probe["statuses"] if s["state"] == "active"}
            return worker_ids <= active

        wait_until(active_on_workers, 30, "the probe to be active on every worker")

        def request(_: int) -> str:
            return str(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text)

        def snapshot_instances() -> set[str]:
            with ThreadPoolExecutor(6) as pool:
                assert set(pool.map(request, range(12))) == {"12"}
            events = api.get("/events", params={"probe_id": probe_id, "limit": 200})
            return {e["instance_id"] for e in events.json()["events"]} & worker_ids

        wait_until(lambda: snapshot_instances() == worker_ids, 60, "a snapshot from every worker")
        events = api.get("/events", params={"probe_id": probe_id, "limit": 1}).json()
        locals_ = events["events"][0]["frames"][0]["locals"]
        assert locals_["total"]["v"] == 12
    finally:
        stop_process(process)


SCRIPT = textwrap.dedent(
    """
    import time

    def checkout(items):
        total = sum(items)
        return total  # @probe

    deadline = time.time() + 60
    while time.time() < deadline:
        checkout([1, 2, 3])
        time.sleep(0.05)
    """
)


def agent_pythons() -> Dict[str, str]:
    """This interpreter, and those dev.py prepared for the agent (``PEEPHOLE_TEST_PYTHONS``
    is ``3.9=/path/python,3.13=/path/python``)."""
    found = {"main": sys.executable}
    for item in os.environ.get("PEEPHOLE_TEST_PYTHONS", "").split(","):
        version, _, path = item.partition("=")
        if path and version in ("3.9", "3.13"):
            found[version] = path
    return found


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(120)
@pytest.mark.parametrize("python", list(agent_pythons()))
def test_a_plain_script_under_peephole_run(
    server: ServerProcess, api: httpx.Client, tmp_path: Path, python: str
) -> None:
    service = f"script-shop-{python}"
    (tmp_path / "script_shop.py").write_text(SCRIPT)
    command = peephole_run(
        "--service",
        service,
        "--version",
        "7",
        "--server",
        server.url,
        "--key",
        AGENT_KEY,
        "--wait",
        "10",
        "--",
        agent_pythons()[python],
        "script_shop.py",
    )
    process = subprocess.Popen(command, cwd=tmp_path, env=clean_env())
    try:
        [instance] = wait_until(lambda: connected(api, service), 30, "the script")
        assert instance["pid"] == process.pid
        assert instance["version"] == "7"
        if python != "main":
            assert instance["runtime"].startswith(f"CPython {python}.")
        created = api.post(
            "/probes",
            json={
                "kind": "logpoint",
                "file": "script_shop.py",
                "line": probe_line(SCRIPT),
                "template": "total={total}",
                "target": {"service": service},
            },
        )
        assert created.status_code == 201, created.text
        probe_id = created.json()["id"]

        def lines() -> List[str]:
            events = api.get("/events", params={"probe_id": probe_id}).json()["events"]
            return [e["message"] for e in events]

        assert wait_until(lines, 30, "logpoint lines")[0] == "total=6"
    finally:
        stop_process(process)


ASGI_APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        items = [2, 3]
        total = sum(items)  # @probe
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})
    """
)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.timeout(180)
def test_uvicorn_spawned_workers_each_register_and_get_probes(
    server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "asgi_shop.py").write_text(ASGI_APP)
    port = free_port()
    command = peephole_run(
        "--service",
        "ushop",
        "--server",
        server.url,
        "--key",
        AGENT_KEY,
        "--",
        sys.executable,
        "-m",
        "uvicorn",
        "--workers",
        "2",
        "--port",
        str(port),
        "asgi_shop:app",
    )
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=clean_env()
        )
    try:
        # Besides the 2 workers, multiprocessing's resource tracker (also a spawned Python
        # process) registers; it never imports the application, so its probe stays pending.
        def others() -> List[Dict[str, Any]]:
            assert process.poll() is None, log_path.read_text()
            return [i for i in connected(api, "ushop") if i["pid"] != process.pid]

        wait_until(lambda: len(others()) >= 2, 60, "the uvicorn workers to register")
        created = api.post(
            "/probes",
            json={
                "kind": "tracepoint",
                "file": "asgi_shop.py",
                "line": probe_line(ASGI_APP),
                "target": {"service": "ushop"},
            },
        )
        assert created.status_code == 201, created.text
        probe_id = created.json()["id"]

        def active_workers() -> set[str]:
            probe = api.get(f"/probes/{probe_id}").json()
            active = {s["instance_id"] for s in probe["statuses"] if s["state"] == "active"}
            workers = {i["instance_id"] for i in others()} & active
            return workers if len(workers) == 2 else set()

        worker_ids = wait_until(active_workers, 30, "the probe to be active on both workers")
        assert len({i["pid"] for i in others() if i["instance_id"] in worker_ids}) == 2

        def captured() -> List[Dict[str, Any]]:
            assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "5"
            events = api.get("/events", params={"probe_id": probe_id}).json()["events"]
            return [e for e in events if e["instance_id"] in worker_ids]

        [snapshot, *_] = wait_until(captured, 30, "a snapshot from a worker")
        assert snapshot["frames"][0]["locals"]["items"]["len"] == 2
    finally:
        stop_process(process)
