"""The agent that lives inside the application's process.

Nothing here is imported by ``import peephole``; :func:`peephole.start` imports it. The
names below load on first use, so importing one agent module does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peephole.agent.config import AgentConfig
    from peephole.agent.core import Agent

__all__ = ["Agent", "AgentConfig"]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from peephole.agent.core import Agent

        return Agent
    if name == "AgentConfig":
        from peephole.agent.config import AgentConfig

        return AgentConfig
    raise AttributeError(f"module 'peephole.agent' has no attribute {name!r}")
