"""A stand-in Sidekick broker on loopback: it accepts the agents' ``/app`` WebSocket, writes
every frame both ways as JSON lines, answers the start-up requests and lets a test send probe
requests. It exists to record what the real agents do (the fixtures beside it) and to prove
the test harness without peephole's translator in the loop."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Frame = dict[str, Any]

#: Every key the agents read from a config map: an agent replaces its whole capture config
#: with what it is sent, so a partial map would reset the rest to defaults.
DEFAULT_CONFIG: Frame = {
    "maxFrames": 10,
    "maxExpandFrames": 1,
    "maxProperties": 10,
    "maxParseDepth": 3,
    "errorCollectionEnable": False,
    "errorCollectionEnableCaptureFrame": False,
}

_STARTUP_ANSWERS = {
    "FilterTracePointsRequest": ("FilterTracePointsResponse", "tracePoints"),
    "FilterLogPointsRequest": ("FilterLogPointsResponse", "logPoints"),
    "GetConfigRequest": ("GetConfigResponse", "config"),
}


class Recorder:
    """One broker on a free loopback port; ``entries`` holds what went over the wire."""

    def __init__(self, api_key: str, log_path: Path | None = None) -> None:
        self.api_key = api_key
        self.config: Frame = dict(DEFAULT_CONFIG)
        self.entries: list[Frame] = []
        self._log_path = log_path
        self._lock = threading.Condition()
        self._connection: ServerConnection | None = None
        self._started = time.monotonic()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.socket.getsockname()[1])

    def __enter__(self) -> Recorder:
        self._server = serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._check,
            compression=None,
            close_timeout=1,  # Python's agent never answers a close
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._thread.join(10)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse before the upgrade, as the broker did: wrong path, key or no instance id."""
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        refused = (
            request.path.split("?")[0] != "/app"
            or headers.get("x-sidekick-api-key") != self.api_key
            or not headers.get("x-sidekick-app-instance-id")
        )
        self._record("refused" if refused else "upgrade", {"path": request.path, **headers})
        if not refused:
            return None
        body = b"Unauthorized"
        return Response(
            HTTPStatus.UNAUTHORIZED,
            "Unauthorized",
            Headers({"Content-Length": str(len(body)), "Content-Type": "text/plain"}),
            body,
        )

    def _serve(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connection = connection
        try:
            for text in connection:
                frame = json.loads(text)
                self._record("agent", frame)
                answer = self._answer(frame)
                if answer is not None:
                    self.send(answer)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if self._connection is connection:
                    self._connection = None
            self._record("closed", {})

    def _answer(self, frame: Frame) -> Frame | None:
        """Empty probe lists and the full config map, as a broker with nothing stored."""
        if frame.get("type") != "Request" or frame.get("name") not in _STARTUP_ANSWERS:
            return None
        name, key = _STARTUP_ANSWERS[frame["name"]]
        value: Any = dict(self.config) if key == "config" else []
        return {
            "type": "Response",
            "name": name,
            "source": "Broker",
            "requestId": frame.get("id"),
            "erroneous": False,
            "errorCode": 0,
            "applicationInstanceId": frame.get("applicationInstanceId"),
            key: value,
        }

    def send(self, frame: Frame) -> Frame:
        """Send one frame to the connected agent (a request gets an id and client)."""
        if frame.get("type") == "Request":
            frame = {"id": str(uuid.uuid4()), "client": "SessionGroup", **frame}
        with self._lock:
            connection = self._connection
        if connection is None:
            raise RuntimeError("no agent is connected")
        connection.send(json.dumps(frame))
        self._record("broker", frame)
        return frame

    def drop(self) -> None:
        """Close the agent's connection from the broker side (the agent reconnects)."""
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.close()

    def request(self, name: str, **fields: Any) -> Frame:
        """Send a request and wait for the agent's response to it."""
        sent = self.send({"type": "Request", "name": name, **fields})
        return self.wait_for(lambda e: e["frame"].get("requestId") == sent["id"], "agent")

    def _record(self, direction: str, frame: Frame) -> None:
        entry = {"dir": direction, "t": round(time.monotonic() - self._started, 3), "frame": frame}
        with self._lock:
            self.entries.append(entry)
            if self._log_path is not None:
                with open(self._log_path, "a") as log:
                    log.write(json.dumps(entry) + "\n")
            self._lock.notify_all()

    def wait_for(
        self,
        match: Callable[[Frame], bool],
        direction: str = "agent",
        timeout: float = 20.0,
        after: int = 0,
    ) -> Frame:
        """The first entry from ``direction`` at or past position ``after`` that matches,
        waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        seen = after
        with self._lock:
            while True:
                for entry in self.entries[seen:]:
                    if entry["dir"] == direction and match(entry):
                        frame: Frame = entry["frame"]
                        return frame
                seen = len(self.entries)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {direction} entry matched within {timeout} s")
                self._lock.wait(remaining)

    def mark(self) -> int:
        """A position in ``entries``: pass it to ``since`` to see only what came later."""
        with self._lock:
            return len(self.entries)

    def since(self, position: int, name: str | None = None) -> list[Frame]:
        with self._lock:
            frames = [e["frame"] for e in self.entries[position:] if e["dir"] == "agent"]
        return [f for f in frames if name is None or f.get("name") == name]


def named(name: str) -> Callable[[Frame], bool]:
    """A ``wait_for`` matcher for a frame's ``name``."""
    return lambda entry: entry["frame"].get("name") == name
