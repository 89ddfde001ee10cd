"""peephole: a live debugger for Python services in production.

``import peephole`` is cheap: the agent is imported only when :func:`start` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

__all__ = ["current_agent", "start", "stop"]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from peephole.agent.core import Agent

_agent: Optional[Agent] = None


def start(**settings: Any) -> Agent:
    """Start the agent in this process (idempotent) and connect it to the server.

    Settings are the fields of :class:`peephole.agent.config.AgentConfig`; any not given
    come from ``PEEPHOLE_*`` environment variables, then from the defaults.
    """
    global _agent
    if _agent is not None:
        return _agent
    from peephole.agent.launch import start_agent

    _agent = start_agent(**settings)
    return _agent


def stop() -> None:
    """Stop the agent started by :func:`start`, removing every probe."""
    global _agent
    if _agent is not None:
        _agent.stop()
        _agent = None


def current_agent() -> Optional[Agent]:
    return _agent
