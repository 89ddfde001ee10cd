"""A small agent gateway for the agent's tests: a real WebSocket server on a loopback port that
speaks the server side of :mod:`peephole.protocol` (the real server needs Python 3.10+ and
packages the agent's tests do not have)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from peephole import protocol
from waiting import wait_until


class Session:
    """One agent connection as the gateway saw it."""

    def __init__(self, ws: ServerConnection, hello: Dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.instance: Dict[str, Any] = hello.get("instance") or {}
        self.messages: List[Dict[str, Any]] = []
        self.closed = threading.Event()

    def send(self, message: Dict[str, Any]) -> None:
        self.ws.send(protocol.encode(message))

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in list(self.messages) if m["type"] == kind]


class Gateway:
    """Accepts agents with ``key``, welcomes them with ``policy``, pushes ``probes`` and acks
    events (unless ``ack`` is False). Everything received is kept for assertions."""

    def __init__(
        self,
        key: str = "test-key",
        probes: Optional[List[Dict[str, Any]]] = None,
        policy: Optional[Dict[str, Any]] = None,
        ack: bool = True,
        port: int = 0,
        ack_delay: float = 0.0,
        probes_delay: float = 0.0,
    ) -> None:
        self.key = key
        self.probes = list(probes or [])
        self.policy = dict(policy or {})
        self.ack = ack
        self.ack_delay = ack_delay  # seconds before each ack: a slow server
        self.probes_delay = probes_delay  # seconds from welcome to probes (a database query)
        self.sessions: List[Session] = []
        self.rejected: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []
        self.dropped = 0
        self._lock = threading.Lock()
        # Held from a session's welcome to its first probes, and by push_probes: a push can
        # never overtake the first list it replaces.
        self._probes_lock = threading.Lock()
        self._server: Server = serve(
            self._handle, "127.0.0.1", port, compression=None, max_size=protocol.MAX_MESSAGE_BYTES
        )
        self.port: int = self._server.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and drop every connection (as a server that goes away does)."""
        self._server.shutdown()
        self._thread.join(5)
        for session in list(self.sessions):
            session.ws.close(1001, "going away")

    def push_probes(self, probes: List[Dict[str, Any]]) -> None:
        with self._probes_lock:
            self.probes = list(probes)
            for session in self.live():
                session.send({"type": "probes", "probes": self.probes})

    def live(self) -> List[Session]:
        return [s for s in list(self.sessions) if not s.closed.is_set()]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        return wait_until(predicate, timeout, f"waiting for {predicate}", interval=0.02)

    def _ack(self, session: Session, seq: int) -> None:
        """Acknowledge a batch, ``ack_delay`` later (on a timer: messages keep being read)."""

        def send() -> None:
            try:
                session.send({"type": "ack", "seq": seq})
            except ConnectionClosed:
                pass

        if not self.ack_delay:
            send()
            return
        timer = threading.Timer(self.ack_delay, send)
        timer.daemon = True
        timer.start()

    def _handle(self, ws: ServerConnection) -> None:
        try:
            hello = protocol.decode(ws.recv(timeout=10))
        except (ConnectionClosed, TimeoutError, protocol.ProtocolError):
            return
        if hello["type"] != "hello" or hello.get("key") != self.key:
            with self._lock:
                self.rejected.append(hello)
            ws.send(protocol.encode({"type": "error", "reason": "unknown agent key"}))
            ws.close(1008, "unknown agent key")
            return
        session = Session(ws, hello)
        try:
            with self._probes_lock:
                with self._lock:
                    self.sessions.append(session)
                session.send(
                    {
                        "type": "welcome",
                        "instance_id": session.instance.get("instance_id"),
                        "config": self.policy,
                    }
                )
                if self.probes_delay:
                    session.closed.wait(self.probes_delay)
                session.send({"type": "probes", "probes": self.probes})
            for text in ws:
                message = protocol.decode(text)
                session.messages.append(message)
                if message["type"] == "events" and self.ack:
                    with self._lock:
                        self.events.extend(message["events"])
                        self.dropped += message.get("dropped", 0)
                    self._ack(session, message["seq"])
        except ConnectionClosed:
            pass
        finally:
            session.closed.set()
