"""The in-process agent: probes in, events and statuses out.

:class:`Agent` works without a server: give it a ``sink`` and it hands batches of events to
it on a background thread. The transport connects the same object to the server.
"""

from __future__ import annotations

import threading
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

from peephole import protocol
from peephole.agent import health, otel
from peephole.agent.clock import REAL, Clock
from peephole.agent.config import AgentConfig
from peephole.agent.delivery.buffer import EventBuffer, Sink
from peephole.agent.placement import source
from peephole.agent.placement.imports import HOOK, FileWatcher
from peephole.agent.placement.instrument import Backend, Unavailable, new_backend
from peephole.agent.placement.locate import locate
from peephole.agent.placement.paths import (
    LocateError,
    NoSuchFile,
    NotLoaded,
    normalize_path,
    path_matches,
)
from peephole.agent.placement.waiting import Retries, WaitedFiles, base_name
from peephole.agent.probe import THROTTLE_QUIET_NS, ArmedProbe, Shared
from peephole.agent.probe import after_fork as probe_after_fork
from peephole.agent.safe.capture import Capturer
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import (
    ACTIVE,
    DISABLED,
    DONE,
    ERROR,
    EXPIRED,
    PENDING,
    THROTTLED,
    AgentPolicy,
    ProbeSpec,
    ProbeStatus,
)

__all__ = ["Agent"]

StatusCallback = Callable[[List[ProbeStatus]], None]
HOUSEKEEPING_SECONDS = 1.0
EVENT_OVERHEAD_BYTES = 512  # ids, times, names: what an event costs besides its payload


class Agent:
    """Places probes in this process and delivers what they capture to ``sink``.

    ``sink`` receives lists of event dicts on the agent's delivery thread; returning
    ``False`` (or raising) means "not delivered": the events stay buffered and are retried
    with backoff. ``on_status``, if set, is called off the application threads with the
    statuses that changed: at once for state changes, at most once a second for counters.
    """

    def __init__(
        self,
        config: Optional[AgentConfig] = None,
        sink: Optional[Sink] = None,
        clock: Clock = REAL,
    ) -> None:
        self.config = config if config is not None else AgentConfig()
        self.clock = clock  # every limit, expiry and timestamp reads this, never `time`
        self.on_status: Optional[StatusCallback] = None
        self._policy: Optional[AgentPolicy] = None
        self.redactor = Redactor.from_policy(self.config, None)
        self.capturer = Capturer(self.config.limits, self.redactor, self.clock)
        self._buffer = EventBuffer(self.config.buffer_bytes, sink, on_drop=self._dropped_event)
        self._init_runtime()
        self._backend: Optional[Backend] = None
        self._watcher = _Waiting(self)
        self._files = WaitedFiles()  # what the import hook asks, made once per waiting set
        self._retries = Retries(clock)  # paths that matched nothing are looked for less often
        self._probes: Dict[str, ArmedProbe] = {}

    def _init_runtime(self) -> None:
        """Locks, threads and shared counters: everything a forked child must make anew."""
        self._lock = threading.RLock()
        self._shared = Shared(self.config, self._emit, self._poke, self.clock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._reported: Dict[str, Tuple[Any, ...]] = {}
        self._reported_health = health.snapshot()
        self._last_counters = 0
        self._started = False

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery and housekeeping threads (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._stopping.clear()
            if self._buffer.sink is not None:
                self._buffer.start()
            self._thread = threading.Thread(
                target=self._housekeeping, name="peephole-status", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Remove every probe (restoring all code), deliver what is buffered, stop threads."""
        with self._lock:
            for probe in list(self._probes.values()):
                self._uninstall(probe)
            self._probes.clear()
            HOOK.unwatch(self._watcher)
            if self._backend is not None:
                self._backend.close()
                self._backend = None
            self._started = False
            self._stopping.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        self._buffer.stop()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every buffered event was accepted by the sink."""
        return self._buffer.flush(timeout)

    @property
    def queued(self) -> int:
        """Events waiting for delivery."""
        return len(self._buffer)

    def flush_at_exit(self, timeout: float) -> int:
        """Deliver within ``timeout`` what matters most first (see ``EventBuffer.prioritize``);
        return how many events were abandoned, counted as drops of their probes and reported
        with the agent's health."""
        buffer = self._buffer
        buffer.prioritize()
        if timeout > 0 and buffer.flush(timeout):
            return 0
        events = buffer.abandon()
        for event in events:
            self._dropped_event(event)
        health.abandoned(len(events))
        return len(events)

    def after_fork_in_child(self) -> None:
        """In a forked child: the parent's threads are gone and its locks may be held."""
        self._buffer.reset_after_fork()
        probes = self._probes
        was_started = self._started
        self._init_runtime()
        probe_after_fork()
        health.reset_after_fork()
        for probe in probes.values():
            probe.after_fork(self._shared)
        if was_started:
            self.start()

    @property
    def dropped(self) -> int:
        """Events dropped because the buffer was full."""
        return self._buffer.dropped

    @property
    def sink(self) -> Optional[Sink]:
        return self._buffer.sink

    @sink.setter
    def sink(self, sink: Optional[Sink]) -> None:
        self._buffer.sink = sink
        if sink is not None and self._started:
            self._buffer.start()

    @property
    def backend(self) -> Optional[Backend]:
        """The instrumentation technique in use, once a probe needed one."""
        return self._backend

    # --- probes ---------------------------------------------------------------------------

    def set_probe(self, spec: ProbeSpec) -> ProbeStatus:
        """Install ``spec``, or update the probe with its id (a new version replaces it)."""
        with self._lock:
            existing = self._probes.get(spec.id)
            if existing is not None:
                if existing.spec == spec and existing.state != ERROR:
                    return existing.status()
                self._uninstall(existing)
            probe = ArmedProbe(spec, self._shared)
            if existing is not None:
                probe.continue_from(existing)
            self._probes[spec.id] = probe
            self._install(probe)
            if existing is not None:  # the version replaced may have been what the hook waited for
                self._update_watcher()
            status = probe.status()
        self._poke()
        return status

    def remove_probe(self, probe_id: str) -> bool:
        with self._lock:
            probe = self._probes.pop(probe_id, None)
            if probe is None:
                return False
            self._uninstall(probe)
            self._reported.pop(probe_id, None)
            self._update_watcher()
        return True

    def sync_probes(self, specs: List[ProbeSpec]) -> None:
        """Make the installed probes exactly ``specs``."""
        with self._lock:
            wanted = {spec.id for spec in specs}
            for probe_id in list(self._probes):
                if probe_id not in wanted:
                    self.remove_probe(probe_id)
            for spec in specs:
                self.set_probe(spec)

    def statuses(self) -> List[ProbeStatus]:
        with self._lock:
            return [probe.status() for probe in self._probes.values()]

    def status(self, probe_id: str) -> Optional[ProbeStatus]:
        probe = self._probes.get(probe_id)
        return probe.status() if probe is not None else None

    @property
    def policy(self) -> Optional[AgentPolicy]:
        """The server's latest policy (None until the server sends one)."""
        return self._policy

    def set_policy(self, policy: AgentPolicy) -> None:
        """Apply the server's redaction settings to every probe, without a restart."""
        with self._lock:
            self._policy = policy
            self.redactor = Redactor.from_policy(self.config, policy)
            self.capturer = Capturer(self.config.limits, self.redactor, self.clock)
            for probe in list(self._probes.values()):
                if probe.state in (DONE, EXPIRED, DISABLED) or (
                    probe.state == ERROR and not probe.heals  # an error that heals arms later
                ):
                    continue
                reason = probe.prepare(self.redactor)
                if reason is not None:
                    self._uninstall(probe)
                    probe.heals = False
                    probe.set_state(ERROR, reason)
        self._poke()

    def _install(self, probe: ArmedProbe) -> None:
        spec = probe.spec
        if not spec.enabled:
            probe.set_state(DISABLED)
            return
        reason = probe.prepare(self.redactor)
        if reason is not None:
            probe.set_state(ERROR, reason)
            return
        if probe.limit_reached:
            probe.set_state(DONE, f"hit limit of {probe.hit_limit} reached")
            return
        if probe.expires_at <= self.clock.wall():
            probe.set_state(EXPIRED, "the probe expired before it was installed")
            return
        self._arm(probe)

    def _arm(self, probe: ArmedProbe, finished: Optional[str] = None) -> None:
        """Locate and arm ``probe``; on failure it ends pending or in error, never half-armed.

        ``finished``: a file whose module body has just run, or is about to run with its code
        known (see :mod:`peephole.agent.placement.imports`).
        """
        spec = probe.spec
        try:
            backend = self._ensure_backend()
            resolution = locate(
                spec.file, spec.line, backend.instructions, backend.unwrap, finished
            )
        except NotLoaded as exc:
            self._retries.forget(probe)
            probe.set_state(PENDING, str(exc))
            self._update_watcher()
            return
        except LocateError as exc:
            probe.heals = exc.heals  # retried by housekeeping and when its module is imported
            if isinstance(exc, NoSuchFile):
                self._retries.failed(probe, base_name(normalize_path(spec.file)))
            else:
                self._retries.forget(probe)
            probe.set_state(ERROR, str(exc))
            self._update_watcher()
            return
        except Unavailable as exc:
            probe.heals = False
            probe.set_state(ERROR, str(exc))
            return
        except Exception as exc:
            probe.heals = False
            probe.set_state(ERROR, f"cannot locate {spec.file}:{spec.line}: {exc!r}")
            return
        armed = []
        try:
            for target in resolution.targets:
                backend.arm(target, resolution.index, probe.hook_for(target.code))
                armed.append(target)
        except Exception as exc:
            for target in armed:
                try:
                    backend.disarm(target, probe.hook_for(target.code))
                except Exception as disarm_exc:
                    health.internal_error("disarming after a failed arm", disarm_exc)
            probe.heals = False
            probe.set_state(ERROR, f"cannot instrument {resolution.path}: {exc!r}")
            return
        probe.targets = armed
        probe.path = resolution.path
        probe.set_state(ACTIVE)
        self._update_watcher()

    def _uninstall(self, probe: ArmedProbe) -> None:
        probe.live = False
        backend = self._backend
        for target in probe.targets:
            if backend is None:
                break
            try:
                backend.disarm(target, probe.hook_for(target.code))
            except Exception as exc:
                health.internal_error("disarming a probe", exc)
        probe.targets = []

    def _ensure_backend(self) -> Backend:
        if self._backend is None:
            self._backend = new_backend()
        return self._backend

    # --- pending probes and imports ---------------------------------------------------------

    def _waiting(self) -> List[ArmedProbe]:
        """Probes waiting for their module, or in an error that may heal."""
        return [
            probe
            for probe in list(self._probes.values())
            if probe.state == PENDING or (probe.state == ERROR and probe.heals)
        ]

    def _update_watcher(self) -> None:
        waiting = self._waiting()
        self._files.update(probe.spec.file for probe in waiting)
        if waiting:
            HOOK.watch(self._watcher)
        else:
            HOOK.unwatch(self._watcher)

    def _waits_for(self, filename: str) -> bool:
        """Asked by the import hook for every import while probes wait (importing thread)."""
        if not self._files.named(filename):
            return False
        self._retries.forget_named(base_name(filename))  # a file of that name: look again
        return self._files.wants(filename)

    def _importing(self, filename: str, code: types.CodeType) -> types.CodeType:
        """Before a module body a waiting probe names runs (importing thread): arm its code
        now, so lines run during the import are hit too; return the code to run."""
        with self._lock:
            self._arm_waiting(filename)
            backend = self._backend
            armed = backend.current(code) if backend is not None else code
        self._poke()
        return armed

    def _imported(self, filename: str) -> None:
        """Right after that module body ran: arm the probes that came during the import."""
        with self._lock:
            self._arm_waiting(filename)
        self._poke()

    def _arm_waiting(self, filename: str) -> None:
        for probe in self._waiting():
            if path_matches(normalize_path(probe.spec.file), filename):
                self._arm(probe, finished=filename)
        self._update_watcher()

    def _retry_pending(self) -> None:
        """Catch modules loaded in ways the import hook does not see (runpy, exec, an import
        under way when the probe came) and errors that heal (``sys.path`` set late); a path
        that matched nothing is looked for again less and less often (:mod:`.waiting`)."""
        waiting = self._waiting()
        self._retries.keep_only(waiting)
        for probe in waiting:
            if self._retries.due(probe):
                self._arm(probe)

    # --- events ---------------------------------------------------------------------------

    def emit(self, event: Dict[str, Any]) -> None:
        """Queue an event from any thread: fills instance, service and trace ids. Never blocks."""
        try:
            self._emit(event, otel.trace_ids())
        except Exception as exc:
            health.internal_error("queueing an event", exc)

    def _emit(self, event: Dict[str, Any], ids: Optional[Tuple[str, str]]) -> None:
        event["instance_id"] = self.config.instance_id
        event["service"] = self.config.service
        if ids is not None:
            event["trace_id"], event["span_id"] = ids
        self._buffer.put(event, _estimate_size(event))

    def _dropped_event(self, event: Dict[str, Any]) -> None:
        probe = self._probes.get(event.get("probe_id") or "")
        if probe is not None:
            probe.drops += 1

    # --- source ---------------------------------------------------------------------------

    def get_source(self, path: str) -> Dict[str, Any]:
        """``{"path", "text", "lines"}`` of a loaded file, or ``{"path", "error"}``: only what
        the source policy allows, with secret literals masked (``placement/source.py``)."""
        try:
            policy = source.SourcePolicy.from_settings(self.config, self._policy)
            return source.serve(path, policy, self.redactor)
        except Exception as exc:
            return {"path": path, "error": f"cannot read {path}: {exc!r}"}

    def list_files(self) -> List[str]:
        try:
            return source.list_files(source.SourcePolicy.from_settings(self.config, self._policy))
        except Exception as exc:
            health.internal_error("listing files", exc)
            return []

    # --- housekeeping ---------------------------------------------------------------------

    def _poke(self) -> None:
        self._wake.set()

    def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(HOUSEKEEPING_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._tick()
            except Exception as exc:
                health.internal_error("housekeeping", exc)

    def _tick(self) -> None:
        now = self.clock.wall()
        with self._lock:
            for probe in list(self._probes.values()):
                if probe.state in (ACTIVE, THROTTLED, PENDING) and probe.expires_at <= now:
                    self._uninstall(probe)
                    probe.set_state(EXPIRED, "the probe's time is up")
                elif probe.state == DONE and probe.targets:
                    self._uninstall(probe)
                elif (
                    probe.state == THROTTLED
                    and self.clock.monotonic_ns() - probe.throttled_at > THROTTLE_QUIET_NS
                ):
                    probe.set_state(ACTIVE)
            self._retry_pending()
            self._update_watcher()
            statuses = [probe.status() for probe in self._probes.values()]
        health.log_new()
        self._report(statuses)

    def _report(self, statuses: List[ProbeStatus]) -> None:
        callback = self.on_status
        now = self.clock.monotonic_ns()
        counters_due = now - self._last_counters >= HOUSEKEEPING_SECONDS * 1e9
        changed = []
        for status in statuses:
            key = (status.state, status.message, status.version, status.path)
            counters = (status.hits, status.captures, status.drops, status.condition_errors)
            previous = self._reported.get(status.probe_id)
            if (
                previous is not None
                and previous[0] == key
                and (not counters_due or previous[1] == counters)
            ):
                continue
            self._reported[status.probe_id] = (key, counters)
            changed.append(status)
        if counters_due:
            self._last_counters = now
        current = health.snapshot()
        if current != self._reported_health:  # an empty list still carries the agent's health
            self._reported_health = current
        elif not changed:
            return
        if callback is not None:
            try:
                callback(changed)
            except Exception as exc:
                health.internal_error("reporting statuses", exc)


class _Waiting(FileWatcher):
    """The agent as the import hook sees it: which files it waits for, and what to do."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def wants(self, filename: str) -> bool:
        return self._agent._waits_for(filename)

    def before(self, filename: str, code: types.CodeType) -> types.CodeType:
        return self._agent._importing(filename, code)

    def after(self, filename: str) -> None:
        self._agent._imported(filename)


def _estimate_size(event: Dict[str, Any]) -> int:
    size = event.get("size")
    if isinstance(size, int):
        return size + EVENT_OVERHEAD_BYTES
    message = event.get("message")
    if isinstance(message, str) and "frames" not in event:
        return len(message) + EVENT_OVERHEAD_BYTES
    return len(protocol.encode(event))
