"""Adversarial suite (issue 10): no secret's bytes leave the application process.

A real server and a real application process under the real agent, holding the corpus of
:mod:`corpus` (over 200 secrets: secret names in every spelling and placement, token formats,
cards, PEM blocks, the real request objects of Starlette, Werkzeug/Flask, Django, requests and
httpx, ``http.cookies``, header pairs, the process environment, instance tags, literals in its
source). Every path out of the process is taken at once, with limits raised so that nothing is
hidden merely by a cut: snapshot locals, watches, a logpoint template (also written to the
application's logger), exception locals, messages and args, the source view and instance
metadata. Then every secret is searched in what the server serves (REST), streams (the live
WebSocket) and stores (its data directory), in the CLI's output, and in the logpoint lines
the agent wrote to the application's logger.

Derived values (``{token[1:]}``) are the expression taint's, tested with expressions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from e2e.server_process import ADMIN_TOKEN, AGENT_KEY, ServerProcess
from peephole.cli.main import run
from waiting import wait_until

from . import corpus

pytestmark = [pytest.mark.slow, pytest.mark.server]

HERE = Path(__file__).parent
APP = HERE / "secret_app.py"
SERVICE = "leaky-shop"
WATCHES = [
    "notes", "memo", "named", "named_bytes", "fields", "pairs", "asgi_scope", "starlette_request",
    "starlette_headers", "flask_request", "django_request", "prepared", "httpx_request",
    "httpx_jar", "jar", "environment", "os.environ", "os.environ._data",
    *[f"note_{i}" for i in range(len(corpus.format_secrets()))],
]  # fmt: skip
TEMPLATE = (
    " ".join(f"{{{w}}}" for w in WATCHES) + " {flask_request.environ}"
    " {django_request.META} {prepared.headers} {starlette_request.scope}"
)
LIMITS = {
    "max_depth": 8,
    "max_items": 1000,
    "max_string": 100_000,
    "max_fields": 1000,
    "max_bytes": 1_500_000,
    "max_frames": 20,
    "frames_with_locals": 3,
}
SOURCE_NEEDLES = [  # literals of shop_config.py and shop_settings.py
    ("source literal stripe", "sk_live_Lq8vTz2Kp4Wm9Xr6Ny3Bc7Hd"),
    ("source literal SECRET_KEY", "lit-secret-key-Gh47Tq2Mz9"),
    ("source literal url password", "lit-db-pw-Rk38Vn"),
    ("source literal pem", "MHcCAQEEIlitpemBodyZq84Kw2Lx9Nv3Tb"),
    ("source settings module", "settings-only-Wp73Kd9Qx"),
]


def line_of(marker: str) -> int:
    for number, text in enumerate(APP.read_text().splitlines(), start=1):
        if text.rstrip().endswith(f"# @{marker}"):
            return number
    raise LookupError(marker)


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    return wait_until(check, timeout, f"timed out waiting for {what}", interval=0.1)


class StreamRecorder:
    """Every frame the live stream sends to a viewer of the service, as raw text."""

    def __init__(self, url: str) -> None:
        ws_url = (
            url.replace("http", "ws", 1) + f"/api/v1/stream?token={ADMIN_TOKEN}&service={SERVICE}"
        )
        self.frames: list[str] = []
        self._connection = connect(ws_url)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self._connection:
                self.frames.append(frame if isinstance(frame, str) else frame.decode("latin-1"))
        except ConnectionClosed:
            pass

    def close(self) -> str:
        self._connection.close()
        self._thread.join(10)
        return "\n".join(self.frames)


class App:
    """The application process, driven through stdin."""

    def __init__(self, server: str, log_file: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEEPHOLE_")}
        self.process = subprocess.Popen(
            [sys.executable, str(APP), SERVICE, server, AGENT_KEY, str(log_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        return stdout.readline().strip()

    def send(self, command: str) -> None:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(command + "\n")
        stdin.flush()
        if command != "quit":
            assert self._line() == "done", f"{command} failed"

    def close(self) -> None:
        self.send("quit")
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("leak-server")).start()
    try:
        yield process
    finally:
        process.stop()


def place_probes(api: httpx.Client) -> dict[str, str]:
    """A tracepoint with every watch, a logpoint with every placeholder (also logged to the
    application's logger), and a logpoint that reads secret names (refused by the agent)."""
    common = {
        "file": "secret_app.py",
        "line": line_of("probe-site"),
        "target": {"service": SERVICE},
        "limits": LIMITS,
        "hit_limit": 5,
    }
    bodies = {  # the server takes 20 watches a probe: one tracepoint per 20
        f"tracepoint{i}": {**common, "kind": "tracepoint", "watches": WATCHES[i : i + 20]}
        for i in range(0, len(WATCHES), 20)
    }
    bodies["logpoint"] = {
        **common,
        "kind": "logpoint",
        "template": TEMPLATE,
        "logger": "shop.audit",
    }
    bodies["refused"] = {**common, "kind": "logpoint", "template": "{password} {named['api_key']}"}
    ids = {}
    for name, body in bodies.items():
        answer = api.post("/probes", json=body)
        assert answer.status_code in (200, 201), answer.text
        ids[name] = answer.json()["id"]

    def states() -> dict[str, str]:
        found = {}
        for name, probe_id in ids.items():
            statuses = api.get(f"/probes/{probe_id}").json().get("statuses") or []
            found[name] = statuses[0]["state"] if statuses else "none"
            if found[name] == "error" and name != "refused":
                raise AssertionError(f"probe {name}: {statuses[0].get('message')}")
        return found

    wanted = {name: "error" if name == "refused" else "active" for name in ids}
    eventually(lambda: states() == wanted, f"probe states {wanted} (now {states()})")
    return ids


def gather_rest(api: httpx.Client) -> dict[str, str]:
    """Everything the REST API serves about the service."""
    out: dict[str, str] = {}
    events = api.get("/events", params={"service": SERVICE, "limit": 1000}).json()["events"]
    out["rest events list"] = json.dumps(events)
    out["rest events"] = "\n".join(api.get(f"/events/{e['id']}").text for e in events)
    groups = api.get("/exceptions", params={"service": SERVICE}).json()
    out["rest exceptions"] = json.dumps(groups) + "\n".join(
        api.get(f"/exceptions/{g['fingerprint']}").text for g in groups
    )
    out["rest probes"] = api.get("/probes").text
    out["rest instances"] = api.get("/instances").text + api.get("/services").text
    files = api.get(f"/services/{SERVICE}/files").json()["files"]
    out["rest source files"] = json.dumps(files)
    app_files = [f for f in files if "-packages" not in f]  # the application's own files
    out["rest source"] = "\n".join(
        api.get(f"/services/{SERVICE}/source", params={"path": path}).text
        for path in [*app_files, "shop_settings.py", str(HERE / "shop_settings.py")]
    )
    return out


def gather_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    server: ServerProcess,
    api: httpx.Client,
) -> dict[str, str]:
    """What a person sees with the CLI: tables, snapshots, exceptions, source, the tail."""
    monkeypatch.setenv("PEEPHOLE_URL", server.url)
    monkeypatch.setenv("PEEPHOLE_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("COLUMNS", "4000")
    events = api.get("/events", params={"service": SERVICE, "limit": 1000}).json()["events"]
    groups = api.get("/exceptions", params={"service": SERVICE}).json()
    commands = [
        ["events", "tail", "-s", SERVICE, "-n", "1000"],
        ["snapshots", "list"],
        ["exceptions", "list"],
        ["instances"],
        ["probes", "list"],
        ["source", SERVICE],
        ["source", SERVICE, "shop_config.py"],
        ["source", SERVICE, "secret_app.py"],
        ["source", SERVICE, "shop_settings.py"],
    ]
    commands += [["snapshots", "show", e["id"]] for e in events if e.get("frames")]
    commands += [["exceptions", "show", g["fingerprint"]] for g in groups]
    out: dict[str, str] = {}
    for command in commands:
        capsys.readouterr()
        run(command)
        captured = capsys.readouterr()
        out[f"cli {' '.join(command[:2])}"] = (
            out.get(f"cli {' '.join(command[:2])}", "") + captured.out + captured.err
        )
    return out


def stored(data_dir: Path) -> str:
    """Every byte the server keeps on disk (database, WAL, logs), as text."""
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in sorted(data_dir.rglob("*")) if p.is_file()
    )


def leaks(outputs: dict[str, str], needles: list[tuple[str, str]]) -> list[str]:
    """``label in path`` for every needle found in an output (also with whitespace squashed,
    so a secret wrapped over two lines of a table is still found)."""
    found = []
    squashed = {path: re.sub(r"\s+", "", text) for path, text in outputs.items()}
    for label, needle in needles:
        flat = re.sub(r"\s+", "", needle)
        for path, text in outputs.items():
            if needle in text or flat in squashed[path]:
                found.append(f"{label} in {path}")
    return found


def test_no_secret_leaves_the_process(
    server: ServerProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    stream = StreamRecorder(server.url)
    audit_log = tmp_path / "audit.log"
    app = App(server.url, audit_log)
    try:
        eventually(lambda: SERVICE in api.get("/instances").text, "the instance")
        place_probes(api)
        app.send("hit")
        chunks = (len(corpus.format_secrets()) + 5) // 6

        def arrived() -> bool:
            events = api.get("/events", params={"service": SERVICE, "limit": 1000}).json()
            kinds = [e["type"] for e in events["events"]]
            with_frames = [
                e for e in events["events"] if e["type"] == "exception" and e.get("frames")
            ]
            return (
                kinds.count("snapshot") >= 1
                and kinds.count("log") >= 1
                and len(with_frames) >= chunks
            )

        eventually(
            arrived,
            "the snapshot, the log line and every exception snapshot "
            + str(
                [
                    (e["type"], bool(e.get("frames")))
                    for e in api.get("/events", params={"service": SERVICE}).json()["events"]
                ]
            ),
        )
        outputs = gather_rest(api)
        outputs.update(gather_cli(capsys, monkeypatch, server, api))
    finally:
        app.close()
        api.close()
    outputs["live stream"] = stream.close()
    outputs["server data directory"] = stored(server.data_dir)
    outputs["application log (logpoint lines)"] = audit_log.read_text(errors="replace")

    # Every path carried data: a leak test that captured nothing would pass vacuously.
    for path in ("rest events", "live stream", "cli snapshots show", "cli exceptions show"):
        assert corpus.CONTROL in outputs[path], f"nothing captured reached {path}"
    assert "shop.audit INFO" in outputs["application log (logpoint lines)"]
    assert "eu-west-1" in outputs["rest source"] and "payments" in outputs["rest instances"]
    assert "expression reads" in outputs["rest probes"]  # the refused logpoint said why
    region = next(
        number
        for number, text in enumerate((HERE / "shop_config.py").read_text().split("\n"), start=1)
        if text.startswith("REGION")
    )
    assert re.search(rf"\b{region}  REGION = ", outputs[f"cli source {SERVICE}"]), (
        "line numbers moved"
    )

    needles = [(s.label, s.needle) for s in corpus.all_secrets()] + SOURCE_NEEDLES
    assert len(needles) >= 100
    found = leaks(outputs, needles)
    assert not found, f"{len(found)} leaks:\n" + "\n".join(sorted(found))


def test_an_admin_turns_the_source_view_off_live(server: ServerProcess, tmp_path: Path) -> None:
    """The service's policy reaches the running agent: no file listed, none served."""
    api = httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    app = App(server.url, tmp_path / "audit.log")
    try:
        eventually(lambda: SERVICE in api.get("/instances").text, "the instance")
        files = f"/services/{SERVICE}/files"
        assert any(f.endswith("shop_config.py") for f in api.get(files).json()["files"])
        assert (
            api.put(f"/services/{SERVICE}/policy", json={"serve_source": False}).status_code == 200
        )
        eventually(lambda: api.get(files).json()["files"] == [], "an empty file list")
        answer = api.get(f"/services/{SERVICE}/source", params={"path": "shop_config.py"})
        assert answer.status_code == 404 and "turned off" in answer.text
        api.put(f"/services/{SERVICE}/policy", json={"serve_source": True})
        eventually(lambda: api.get(files).json()["files"] != [], "the files again")
    finally:
        app.close()
        api.close()
