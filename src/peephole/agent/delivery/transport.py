"""The agent's connection to the server: one daemon thread speaking :mod:`peephole.protocol`.

The application's threads never touch the network. The transport thread connects, says
``hello``, applies what the server pushes (probes, policy) and answers its requests (source,
files); the agent's delivery thread hands it batches of events through :meth:`Transport.deliver`
and waits for the server's ``ack``, so events that were not stored stay in the agent's buffer
and are sent again after a reconnect. Each event is encoded once, on the delivery thread, in
slices that let the application's threads run (:mod:`peephole.agent.delivery.encoding`).

Diagnostics go to the ``peephole`` logger, which has a ``NullHandler``: nothing is printed
unless the application configures logging, and then a problem (server unreachable, key
rejected) is logged once at WARNING, not at every retry (see ``docs/agent-setup.md``).

``websockets`` is imported by the transport thread itself, so :func:`peephole.start` does not
add its import time (about 80 ms) to the application's start-up; :meth:`Transport.before_fork`
waits for that import so a forked child never inherits a half-imported module.
"""

from __future__ import annotations

import inspect
import logging
import os
import platform
import random
import socket
import ssl
import sys
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, cast
from urllib.parse import urlsplit, urlunsplit

from peephole import __version__, messages, protocol
from peephole.agent import health
from peephole.agent.clock import REAL
from peephole.agent.config import AgentConfig, ConfigError
from peephole.agent.delivery.encoding import encode_events, events_message
from peephole.agent.safe.redaction import Redactor, masked_tags
from peephole.protocol import AgentPolicy, InstanceInfo, ProbeSpec, ProbeStatus, ProtocolError

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from peephole.agent.core import Agent

__all__ = [
    "Transport",
    "agent_url",
    "backoff_delay",
    "logger",
    "runtime_name",
    "say_rejections_on_stderr",
]

logger = logging.getLogger("peephole")
logger.addHandler(logging.NullHandler())

OPEN_TIMEOUT = 10.0  # seconds to open the connection
WELCOME_TIMEOUT = 10.0  # seconds from hello to welcome
ACK_TIMEOUT = 10.0  # seconds from an events message to its ack
CLOSE_TIMEOUT = 1.0  # seconds to close cleanly at stop
IMPORT_TIMEOUT = 5.0  # seconds a fork waits for the transport thread's first connection attempt
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
# Room left in a message for everything around the events list.
_ENVELOPE_BYTES = 1024


class Rejected(Exception):
    """The server refused this agent (a bad key, an unsupported protocol...)."""


_say_rejections = False  # set by `peephole run`'s bootstrap
_said_rejection = False  # once per process (a forked worker does not say it again)


def say_rejections_on_stderr() -> None:
    """Under ``peephole run``, a refused agent (wrong or missing key) is the operator's
    concern: say it once on stderr, where they see it. The agent never prints otherwise."""
    global _say_rejections
    _say_rejections = True


def agent_url(server: str) -> str:
    """The agent gateway's WebSocket URL for a server address.

    ``http://host:7777`` becomes ``ws://host:7777/agent/v1/ws`` and ``https`` becomes ``wss``;
    a ``ws``/``wss`` URL that already names a path is used as it is. Raises
    :class:`ConfigError` for an address that is not a server's.
    """
    text = server.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ConfigError(f"server URL must start with http(s):// or ws(s)://: {server!r}")
    if not parts.netloc:
        raise ConfigError(f"server URL has no host: {server!r}")
    path = parts.path.rstrip("/")
    keep_path = parts.scheme.lower() in ("ws", "wss") and path
    if not keep_path and not path.endswith(protocol.AGENT_PATH):
        path += protocol.AGENT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def runtime_name() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def backoff_delay(
    attempt: int, initial: float = BACKOFF_INITIAL, cap: float = BACKOFF_MAX
) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, initial * 2**attempt)]."""
    ceiling = min(cap, initial * (2 ** min(attempt, 32)))
    return random.uniform(0.0, ceiling)


class _Ack:
    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class Transport:
    """Connects one agent to the server and keeps it connected until :meth:`stop`."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        heartbeat: float = protocol.HEARTBEAT_SECONDS,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        if not config.server:
            raise ValueError("the transport needs config.server")
        self.config = config
        self.url = agent_url(config.server)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.heartbeat = heartbeat
        self.ack_timeout = ack_timeout
        self._agent: Optional[Agent] = None
        self._reset()

    def _reset(self) -> None:
        """Fresh state: at creation, and in a forked child, where the parent's locks, thread
        and connection must not be used."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._imported = threading.Event()  # set after the first connection attempt
        self._connected = threading.Event()  # set while a welcomed connection is open
        self._ready = threading.Event()  # set once the first probe list is applied
        self._settled = threading.Event()  # ready, or refused: waiting longer is pointless
        self._send_lock = threading.Lock()  # orders events before the last words
        self._closing = False  # the last words were sent: no event may follow them
        self._told_disconnect: Optional[str] = None  # the server's last reason, said once
        self._conn: Optional[ClientConnection] = None
        self._bytes_as_text = False  # websockets 14+ sends bytes as a text frame (send(text=))
        self._thread: Optional[threading.Thread] = None
        self._seq = 0
        self._pending: Dict[int, _Ack] = {}
        self._reported_drops = 0
        self._oversized_drops = 0
        self._problem: Optional[str] = None
        self._started_at = REAL.wall()

    # --- life cycle ---------------------------------------------------------------------

    def start(self, agent: Agent) -> None:
        """Start the transport thread for ``agent`` (returns at once)."""
        self._agent = agent
        self._reported_drops = agent.dropped
        self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name="peephole-transport", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the connection and end the thread, waiting at most about ``timeout`` seconds."""
        self._stopping.set()
        with self._lock:
            conn = self._conn
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # already broken: nothing left to close
                logger.debug("peephole: close failed: %s", exc)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a welcomed connection; True if there is one."""
        return self._connected.wait(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the server's probes for this process are
        installed (or pending on a module not imported yet), not only welcomed. A server
        that refuses this agent ends the wait at once (False)."""
        self._settled.wait(timeout)
        return self._ready.is_set()

    @property
    def problem(self) -> Optional[str]:
        """The last connection problem, None while connected or before the first attempt."""
        return self._problem

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def before_fork(self) -> None:
        """In the parent, before a fork: let the thread finish its first connection attempt,
        so no import lock of websockets' lazy imports is held when the child is made."""
        if self._thread is not None and not self._stopping.is_set():
            self._imported.wait(IMPORT_TIMEOUT)

    def after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's connection without a word on it (it still
        belongs to the parent), then connect anew as this process."""
        conn = self._conn
        was_running = self._thread is not None and not self._stopping.is_set()
        if conn is not None:
            try:
                conn.socket.close()  # only this process's copy; nothing is sent
            except Exception as exc:
                health.internal_error("closing the parent's connection after a fork", exc)
        self._reset()
        if self._agent is not None:
            self._reported_drops = self._agent.dropped
        if was_running:
            self._start_thread()

    # --- what the agent calls -----------------------------------------------------------

    def deliver(self, events: List[Dict[str, Any]]) -> bool:
        """The agent's sink: send ``events`` and wait for the server to store them.

        Returns False when they were not acknowledged (not connected, connection lost, ack
        timeout), so the agent keeps them and offers them again later.
        """
        if not events:
            return True
        if not self._connected.wait(1.0):
            return False
        with self._lock:
            conn = self._conn
        if conn is None:
            return False
        return all(self._send_events(conn, chunk) for chunk in self._chunks(events))

    def send_last_words(self, statuses: List[ProbeStatus]) -> None:
        """At exit: the final statuses (with what was abandoned) as the connection's last
        message; an event batch still on its way is not sent after them."""
        with self._send_lock:
            self._closing = True
            with self._lock:
                conn = self._conn
            if conn is not None and self._connected.is_set():
                self._send(conn, status_message(statuses))

    def report_status(self, statuses: List[ProbeStatus]) -> None:
        """The agent's ``on_status``: tell the server how probes are doing (if connected)."""
        if not self._connected.is_set():
            return  # every status is sent again after the next welcome
        with self._lock:
            conn = self._conn
        if conn is not None:
            self._send(conn, status_message(statuses))

    # --- events ---------------------------------------------------------------------------

    def _chunks(self, events: List[Dict[str, Any]]) -> List[List[bytes]]:
        """Encode each event once and pack them, in order, into messages that stay under the
        protocol's size limit; an event larger than a message alone is dropped and counted."""
        limit = protocol.MAX_MESSAGE_BYTES - _ENVELOPE_BYTES
        chunks: List[List[bytes]] = []
        chunk: List[bytes] = []
        size = 0
        for data in encode_events(events):
            if len(data) + 1 > limit:
                self._oversized_drops += 1
                continue
            if chunk and size + len(data) + 1 > limit:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(data)
            size += len(data) + 1  # and its comma
        if chunk:
            chunks.append(chunk)
        return chunks

    def _send_events(self, conn: ClientConnection, events: List[bytes]) -> bool:
        agent_drops = self._agent.dropped if self._agent is not None else 0
        dropped = max(0, agent_drops - self._reported_drops) + self._oversized_drops
        oversized = self._oversized_drops
        ack = _Ack()
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._pending[seq] = ack
        message = events_message(seq, events, dropped)
        try:
            with self._send_lock:
                if self._closing or not self._send_utf8(conn, message):
                    return False
            ack.done.wait(self.ack_timeout)
            if ack.ok:
                self._reported_drops = max(self._reported_drops, agent_drops)
                self._oversized_drops -= oversized
            return ack.ok
        finally:
            with self._lock:
                self._pending.pop(seq, None)

    def _acknowledge(self, seq: Any) -> None:
        with self._lock:
            ack = self._pending.get(seq) if isinstance(seq, int) else None
        if ack is not None:
            ack.ok = True
            ack.done.set()

    def _fail_pending(self) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for ack in pending:
            ack.done.set()

    # --- the transport thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            import websockets.sync.client  # noqa: F401  (see the module docstring)
        except Exception as exc:
            self._imported.set()
            logger.warning("peephole: cannot import websockets, not connecting: %s", exc)
            return
        attempt = 0
        while not self._stopping.is_set():
            delay: float
            try:
                welcomed = self._session()
                attempt = 0 if welcomed else attempt + 1
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            except Rejected as exc:
                self._note_problem(f"the server rejected this agent: {exc}")
                self._say_rejection(str(exc))
                self._settled.set()
                delay = random.uniform(self.backoff_max / 2, self.backoff_max)
            except Exception as exc:
                self._note_problem(f"cannot reach the server at {self.url}: {_describe(exc)}")
                attempt += 1
                delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            finally:
                self._disconnect()
            if self._stopping.wait(delay):
                break

    def _session(self) -> bool:
        """One connection, from connect to close. Returns whether it was welcomed."""
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        try:
            try:
                conn = connect(
                    self.url,
                    ssl=self._ssl_context(),
                    open_timeout=OPEN_TIMEOUT,
                    close_timeout=CLOSE_TIMEOUT,
                    max_size=protocol.MAX_MESSAGE_BYTES,
                    user_agent_header=f"peephole-agent/{__version__}",
                )
            finally:
                # websockets imports modules lazily while it connects: a fork while this
                # thread holds one of their import locks would hang the child's connection.
                self._imported.set()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise Rejected(f"HTTP {status}") from None
            raise
        self._bytes_as_text = "text" in inspect.signature(conn.send).parameters
        with conn:  # the form websockets 13 to 17 all accept without a warning
            with self._lock:
                self._conn = conn
            if self._stopping.is_set():
                return False
            return self._converse(conn)

    def _converse(self, conn: ClientConnection) -> bool:
        """Hello, welcome, then serve until the connection ends. Returns whether welcomed."""
        from websockets.exceptions import ConnectionClosed

        welcomed = False
        try:
            hello = messages.Hello(
                type="hello",
                instance=self.instance_info().to_dict(),
                key=self.config.key or "",
                protocol=protocol.PROTOCOL_VERSION,
                features=list(protocol.FEATURES),
            )
            conn.send(protocol.encode(hello))
            welcome = protocol.decode(conn.recv(timeout=WELCOME_TIMEOUT))
            if welcome["type"] == "error":
                raise Rejected(str(welcome.get("reason") or "no reason given"))
            if welcome["type"] != "welcome":
                raise ProtocolError(f"expected welcome, got {welcome['type']!r}")
            _check_server_version(welcome.get("protocol", 1))
            welcomed = True
            self._on_welcome(conn, cast(messages.Welcome, welcome))
            self._serve(conn)
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            if not welcomed and reason:
                raise Rejected(reason) from None
            if not welcomed:
                raise
            if not self._stopping.is_set():
                logger.debug("peephole: connection to %s lost: %s", self.url, exc)
        return welcomed

    def _on_welcome(self, conn: ClientConnection, welcome: messages.Welcome) -> None:
        self._apply_policy(welcome.get("config"))
        reason = welcome.get("last_disconnect")
        if isinstance(reason, str) and reason != self._told_disconnect:
            self._told_disconnect = reason
            logger.warning("peephole: the server had disconnected this agent: %s", reason)
        if self._problem is not None:
            logger.warning("peephole: connected to %s again", self.url)
        else:
            logger.info(
                "peephole: connected to %s as instance %s", self.url, self.config.instance_id
            )
        self._problem = None
        self._connected.set()
        agent = self._agent
        if agent is not None:
            statuses = _guard(agent.statuses, [])
            self._send(conn, status_message(statuses))

    def _serve(self, conn: ClientConnection) -> None:
        """Receive and handle messages, sending a heartbeat whenever one is due."""
        next_beat = REAL.monotonic() + self.heartbeat
        while not self._stopping.is_set():
            try:
                text = conn.recv(timeout=max(0.0, next_beat - REAL.monotonic()))
            except TimeoutError:
                self._send(conn, messages.Heartbeat(type="heartbeat", time=REAL.wall()))
                next_beat = REAL.monotonic() + self.heartbeat
                continue
            try:
                message = protocol.decode(text)
            except ProtocolError as exc:
                logger.debug("peephole: ignoring a bad message from the server: %s", exc)
                continue
            self._handle(conn, message)

    def _handle(self, conn: ClientConnection, message: Dict[str, Any]) -> None:
        kind = message["type"]
        agent = self._agent
        if kind == "ack":
            self._acknowledge(message.get("seq"))
        elif agent is None:
            return
        elif kind == "probes":
            self._sync_probes(conn, agent, cast(messages.Probes, message).get("probes"))
        elif kind == "probes_delta":
            self._apply_delta(conn, agent, cast(messages.ProbesDelta, message))
        elif kind in ("policy", "welcome"):
            self._apply_policy(cast(messages.Policy, message).get("config"))
        elif kind == "get_source":
            request = cast(messages.GetSource, message)
            path = str(request.get("path") or "")
            answer = _guard(
                lambda: agent.get_source(path), {"path": path, "error": "the agent failed"}
            )
            source = {**answer, "type": "source", "request_id": request.get("request_id")}
            self._send(conn, cast(messages.Source, source))
        elif kind == "list_files":
            files = _guard(agent.list_files, [])
            request_id = cast(messages.ListFiles, message).get("request_id")
            self._send(conn, messages.Files(type="files", request_id=request_id, files=files))
        elif kind == "error":
            self._note_problem(f"the server says: {cast(messages.Error, message).get('reason')}")
        # Other types are from a newer server: ignored.

    def _sync_probes(self, conn: ClientConnection, agent: Agent, items: Any) -> None:
        specs, invalid = _parse_specs(items)
        _guard(lambda: agent.sync_probes(specs), None)
        self._ready.set()
        self._settled.set()
        if invalid:
            self._send(conn, status_message(invalid))

    def _apply_delta(
        self, conn: ClientConnection, agent: Agent, message: messages.ProbesDelta
    ) -> None:
        """A ``probes_delta``: install ``set``, uninstall ``remove`` and, when ``keep`` is
        given (a connection's first), every probe in neither ``keep`` nor ``set``."""
        specs, invalid = _parse_specs(message.get("set"))
        removed = message.get("remove")
        gone = [str(i) for i in removed] if isinstance(removed, list) else []
        keep = message.get("keep")
        if isinstance(keep, list):
            kept = {str(i) for i in keep} | {spec.id for spec in specs}
            gone += [s.probe_id for s in _guard(agent.statuses, []) if s.probe_id not in kept]
        for probe_id in gone:
            _guard(lambda probe_id=probe_id: agent.remove_probe(probe_id), False)
        for spec in specs:
            _guard(lambda spec=spec: agent.set_probe(spec), None)
        self._ready.set()
        self._settled.set()
        if invalid:
            self._send(conn, status_message(invalid))

    def _apply_policy(self, data: Any) -> None:
        agent = self._agent
        if agent is None or not isinstance(data, dict):
            return
        try:
            policy = AgentPolicy.from_dict(data)
        except ProtocolError as exc:
            logger.debug("peephole: ignoring a bad policy: %s", exc)
            return
        _guard(lambda: agent.set_policy(policy), None)

    def _send(self, conn: ClientConnection, message: Mapping[str, Any]) -> bool:
        """Send one message; False if the connection is gone (the receive loop notices)."""
        return self._send_text(conn, protocol.encode(message))

    def _send_text(self, conn: ClientConnection, text: str) -> bool:
        try:
            conn.send(text)
            return True
        except Exception as exc:
            logger.debug("peephole: send failed: %s", exc)
            return False

    def _send_utf8(self, conn: ClientConnection, message: bytes) -> bool:
        """``message`` (UTF-8 JSON) in a text frame: as it is where websockets takes bytes for
        text (14 and later), else decoded for it first (13)."""
        if not self._bytes_as_text:
            return self._send_text(conn, message.decode())
        try:
            conn.send(message, text=True)  # type: ignore[call-arg,unused-ignore]  # 14+
            return True
        except Exception as exc:
            logger.debug("peephole: send failed: %s", exc)
            return False

    def _disconnect(self) -> None:
        self._connected.clear()
        with self._lock:
            conn, self._conn = self._conn, None
        self._fail_pending()
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # already broken: nothing left to close
                logger.debug("peephole: close failed: %s", exc)

    def _note_problem(self, problem: str) -> None:
        """Log a problem once: the same one again (at every retry) only at DEBUG."""
        if problem != self._problem:
            self._problem = problem
            logger.warning("peephole: %s (retrying in the background)", problem)
        else:
            logger.debug("peephole: %s", problem)

    def _say_rejection(self, reason: str) -> None:
        global _said_rejection
        if _say_rejections and not _said_rejection:
            _said_rejection = True
            key = "no agent key was given" if not self.config.key else "check PEEPHOLE_KEY"
            sys.stderr.write(
                f"peephole: the server at {self.config.server} refused this agent ({reason}); "
                f"{key}. The program runs without live debugging.\n"
            )

    def _ssl_context(self) -> Optional[ssl.SSLContext]:
        if not self.url.startswith("wss:"):
            return None
        return ssl.create_default_context(cafile=self.config.ca_file)

    def instance_info(self) -> InstanceInfo:
        config = self.config
        return InstanceInfo(
            instance_id=config.instance_id,
            service=config.service,
            version=config.version,
            environment=config.environment,
            tags=masked_tags(config.tags, Redactor.from_policy(config, None)),
            host=socket.gethostname(),
            pid=os.getpid(),
            runtime=runtime_name(),
            agent_version=__version__,
            started_at=self._started_at,
        )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def status_message(statuses: List[ProbeStatus]) -> messages.Status:
    """A ``status`` message: the probes' statuses and the agent's own health."""
    return messages.Status(
        type="status",
        probes=[s.to_dict() for s in statuses],
        agent=health.snapshot().to_dict(),
    )


def _check_server_version(version: Any) -> None:
    """Refuse a server older than this agent still speaks (a newer one speaks ours)."""
    if isinstance(version, int) and version < protocol.OLDEST_PROTOCOL_VERSION:
        raise Rejected(
            f"server protocol {version} is too old: this agent needs "
            f"{protocol.OLDEST_PROTOCOL_VERSION} or newer; upgrade the server"
        )


def _parse_specs(items: Any) -> Tuple[List[ProbeSpec], List[ProbeStatus]]:
    """The valid probe specs of a list, and an error status for each invalid one."""
    specs: List[ProbeSpec] = []
    invalid: List[ProbeStatus] = []
    for item in items if isinstance(items, list) else []:
        try:
            specs.append(ProbeSpec.from_dict(item))
        except ProtocolError as exc:
            probe_id = str(item.get("id")) if isinstance(item, dict) else "?"
            message = f"invalid probe: {exc}"
            invalid.append(ProbeStatus(probe_id=probe_id, state=protocol.ERROR, message=message))
    return specs, invalid


def _guard(call: Any, default: Any) -> Any:
    """Call into the agent; a failure there must not end the connection."""
    try:
        return call()
    except Exception as exc:
        health.internal_error("serving the server's request", exc)
        return default
