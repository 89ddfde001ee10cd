"""Start an agent with everything around it: the server connection, exception capture, forks.

:func:`start_agent` is what :func:`peephole.start` (and so ``peephole run``) calls. The agent it
returns also owns its transport and exception capture, so ``stop()`` takes them all down, and
a forked child (a gunicorn worker, with or without ``--preload``; a ``multiprocessing`` fork)
carries on as an instance of its own: new instance id, new threads, a new connection, the
same probes.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Any, List, Optional

from peephole.agent.clock import REAL
from peephole.agent.config import AgentConfig, new_instance_id
from peephole.agent.core import Agent
from peephole.agent.delivery.transport import Transport, logger
from peephole.agent.exception_capture import ExceptionCapture

__all__ = ["ManagedAgent", "start_agent"]


class ManagedAgent(Agent):
    """An :class:`Agent` that also stops its transport and exception capture."""

    transport: Optional[Transport] = None
    capture: Optional[ExceptionCapture] = None

    def stop(self) -> None:
        capture, self.capture = self.capture, None
        if capture is not None:
            _quietly(capture.uninstall)  # sends pending exception counts while connected
        try:
            super().stop()  # delivers what is buffered while the connection is still open
        finally:
            transport = self.transport
            if transport is not None:
                transport.stop()
            _forget(self)

    def at_exit(self) -> None:
        """The interpreter is exiting: within ``config.exit_timeout``, send the exception
        counts, then the buffered events most important first, then the final probe
        statuses with how many events were abandoned; close the connection. Never waits for
        a server that is not there (one that failed, or none configured)."""
        transport = self.transport
        if transport is None:
            return
        deadline = REAL.monotonic() + max(float(self.config.exit_timeout), 0.0)
        capture = self.capture
        if capture is not None:
            _quietly(capture.flush)
        if self.queued and _threads_can_start():  # still connecting: wait for its outcome
            while not transport.connected and transport.problem is None:
                if REAL.monotonic() >= deadline:
                    break
                transport.wait_connected(0.05)
        if transport.connected:
            self.flush_at_exit(deadline - REAL.monotonic())
            _quietly(lambda: transport.send_last_words(self.statuses()))
        else:
            self.flush_at_exit(0.0)  # counted, though no one can be told
        _quietly(transport.stop)

    def after_fork_in_child(self) -> None:
        self.config.instance_id = new_instance_id()
        super().after_fork_in_child()
        if self.transport is not None:
            self.transport.after_fork_in_child()


def start_agent(**settings: Any) -> Agent:
    """Build, start and (when ``server`` is set) connect an agent.

    Settings are :class:`AgentConfig` fields (a bad one raises ``ConfigError``); the rest come
    from ``PEEPHOLE_*`` variables. Returns at once unless ``wait`` is above zero, in which case
    it waits up to that many seconds until the probes the server has for this process are
    installed (or pending on a module not imported yet), so code that runs at once is seen.
    """
    config = AgentConfig.load(**settings)
    transport = Transport(config) if config.server else None
    agent = ManagedAgent(config, sink=transport.deliver if transport is not None else None)
    agent.transport = transport
    if transport is not None:
        agent.on_status = transport.report_status
    agent.start()
    if transport is not None:
        transport.start(agent)
    if config.capture_exceptions:
        agent.capture = _install_exception_capture(agent)
    _track(agent)
    if transport is not None and config.wait > 0 and not transport.wait_ready(config.wait):
        what = "no probes from" if transport.connected else "not connected to"
        logger.warning(
            "peephole: %s %s after %g s; starting anyway", what, transport.url, config.wait
        )
    return agent


def _install_exception_capture(agent: Agent) -> Optional[ExceptionCapture]:
    capture = ExceptionCapture(agent)
    try:
        capture.install()
    except Exception:
        logger.debug("peephole: exception capture not installed", exc_info=True)
        return None
    return capture


# --- forks and exit --------------------------------------------------------------------------
# os.register_at_fork cannot be undone, so one set of hooks serves every agent started here.

_lock = threading.Lock()
_agents: weakref.WeakSet[ManagedAgent] = weakref.WeakSet()
_hooks_registered = False


def _track(agent: ManagedAgent) -> None:
    global _hooks_registered
    with _lock:
        _agents.add(agent)
        if not _hooks_registered:
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
            atexit.register(_at_exit)
            _hooks_registered = True


def _forget(agent: ManagedAgent) -> None:
    with _lock:
        _agents.discard(agent)


def _running() -> List[ManagedAgent]:
    return list(_agents)


def _before_fork() -> None:
    for agent in _running():
        if agent.transport is not None:
            _quietly(agent.transport.before_fork)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's may have been held by another thread
    for agent in _running():
        _quietly(agent.after_fork_in_child)


def _at_exit() -> None:
    """Send what the last moments captured (a short script's snapshots) and close cleanly."""
    for agent in _running():
        _quietly(agent.at_exit)


def _threads_can_start() -> bool:
    """Whether a connection can still be made: CPython 3.12 refuses new threads once the
    interpreter is exiting (3.13 allows them again), and a connection needs one."""
    try:
        thread = threading.Thread(target=_nothing, name="peephole-exit-check", daemon=True)
        thread.start()
    except RuntimeError:
        return False
    thread.join()
    return True


def _nothing() -> None:
    """What the thread of :func:`_threads_can_start` runs."""


def _quietly(call: Any) -> None:
    """Run a hook that must never raise into the application (fork hooks, stop)."""
    try:
        call()
    except Exception:
        logger.debug("peephole: %r failed", call, exc_info=True)
