"""``peephole run -- PROGRAM ARGS...``: start any program with the agent in its Python processes.

The settings travel as ``PEEPHOLE_*`` variables and the bootstrap directory goes first on
``PYTHONPATH``, then the program replaces this process (``exec``), so signals, the exit status
and the terminal are the program's own. Every Python process the program starts reads the
same environment, so a re-executed server, spawned workers and forked workers all get the
agent. Independent of the command-line framework: the CLI only parses flags and calls
:func:`run_command`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from peephole.agent.config import AgentConfig, ConfigError, parse_tags
from peephole.agent.delivery.transport import agent_url

__all__ = ["BOOTSTRAP_DIR", "run_command", "run_environment"]

BOOTSTRAP_DIR = str(Path(__file__).resolve().parent.parent / "agent" / "bootstrap")


def run_environment(
    service: Optional[str] = None,
    env: Optional[str] = None,
    version: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    server: Optional[str] = None,
    key: Optional[str] = None,
    wait: Optional[float] = None,
    base: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The environment the program runs in: ``base`` (default ``os.environ``) plus the agent's
    settings given as flags (which win over ``PEEPHOLE_*`` variables already set) and the
    bootstrap directory first on ``PYTHONPATH``.

    Raises :class:`ConfigError` for a setting the agent could not use, so the mistake is
    reported here rather than silently in every process of the program.
    """
    environ = dict(os.environ if base is None else base)
    flags: Dict[str, Optional[str]] = {
        "PEEPHOLE_SERVICE": service,
        "PEEPHOLE_ENVIRONMENT": env,
        "PEEPHOLE_VERSION": version,
        "PEEPHOLE_SERVER": server,
        "PEEPHOLE_KEY": key,
        "PEEPHOLE_WAIT": None if wait is None else repr(float(wait)),
    }
    if tags:
        merged = parse_tags(environ.get("PEEPHOLE_TAGS", "").split(","))
        merged.update(parse_tags(list(tags)))
        flags["PEEPHOLE_TAGS"] = ",".join(f"{k}={v}" for k, v in merged.items())
    if env is not None:
        environ.pop("PEEPHOLE_ENV", None)  # the alias would otherwise compete with the flag
    for name, value in flags.items():
        if value is not None:
            environ[name] = value
    config = AgentConfig.load(environ=environ)  # raises ConfigError for a bad value
    if config.server:
        agent_url(config.server)  # and for an address that is not a server's
    path = [entry for entry in environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    environ["PYTHONPATH"] = os.pathsep.join(
        [BOOTSTRAP_DIR, *(entry for entry in path if entry != BOOTSTRAP_DIR)]
    )
    return environ


def run_command(
    argv: List[str],
    service: Optional[str] = None,
    env: Optional[str] = None,
    version: Optional[str] = None,
    tags: Optional[Sequence[str]] = None,
    server: Optional[str] = None,
    key: Optional[str] = None,
    wait: Optional[float] = None,
) -> int:
    """Replace this process with ``argv`` running under the agent.

    Returns only on failure: 2 for a bad setting or no program, 127 when the program is not
    found, 126 when it cannot be executed.
    """
    if not argv:
        print("peephole run: give the program to run after --", file=sys.stderr)
        return 2
    try:
        environ = run_environment(service, env, version, tags, server, key, wait)
    except (ConfigError, ValueError) as exc:
        print(f"peephole run: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, environ)
    except FileNotFoundError:
        print(f"peephole run: command not found: {argv[0]}", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"peephole run: cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 126
