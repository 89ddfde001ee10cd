"""The agent that lives inside the application's process.

Nothing here is imported by ``import peephole``; :func:`peephole.start` imports it.
"""

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent

__all__ = ["Agent", "AgentConfig"]
