"""Hooks into web frameworks and the standard library, enabled when the application imports them.

The agent never imports a framework: each integration is tied to the module that defines
the hook point (``flask.signals``, ``django.core.signals``, ...). If that module is already
loaded, the integration is enabled at once; otherwise the agent's one post-import hook
(:mod:`peephole.agent.placement.imports`) waits for the application to import it and
enables the integration right after the module has run.

Each integration declares the framework versions it supports (``FRAMEWORKS``; the table in
docs/integrations.md and dev.py's framework matrix say the same): the oldest and the newest
of them are tested on every Python the agent supports. On a version outside that range the
integration stays off and says so once on the ``peephole`` logger; the rest of the agent
works as usual.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import threading
from types import ModuleType
from typing import List, NamedTuple, Optional, Set, Tuple

from peephole.agent.health import internal_error, logger
from peephole.agent.placement.imports import Callback, cancel, on_import

__all__ = [
    "FRAMEWORKS",
    "Callback",
    "Framework",
    "cancel",
    "disable_frameworks",
    "enable_frameworks",
    "installed_version",
    "on_import",
]


class Framework(NamedTuple):
    """One framework integration: its module (with ``install()`` and ``uninstall()``), the
    distribution whose version is checked, and the versions supported: from ``oldest``
    (included) up to ``below`` (excluded)."""

    integration: str
    name: str
    distribution: str
    oldest: Tuple[int, ...]
    below: Tuple[int, ...]

    def supports(self, version: Tuple[int, ...]) -> bool:
        return self.oldest <= version < self.below

    def range(self) -> str:
        return f">={_dotted(self.oldest)},<{_dotted(self.below)}"


# Framework hook point -> its integration.
FRAMEWORKS = {
    "flask.signals": Framework("peephole.agent.integrations.flask", "Flask", "flask", (2, 3), (4,)),
    "django.core.signals": Framework(
        "peephole.agent.integrations.django", "Django", "django", (4, 2), (7,)
    ),
    "starlette.middleware.errors": Framework(
        "peephole.agent.integrations.starlette", "Starlette", "starlette", (0, 37), (2,)
    ),
}

_lock = threading.Lock()
_enabled: List[str] = []  # integration modules installed, in order
_refused: Set[str] = set()  # integrations left off for their framework's version (said once)


def enable_frameworks() -> None:
    """Enable each framework integration now or when the application imports the framework."""
    for hook_point in FRAMEWORKS:
        on_import(hook_point, _enable_framework)


def disable_frameworks() -> None:
    """Undo :func:`enable_frameworks`: stop waiting and uninstall what was installed."""
    cancel(_enable_framework)
    with _lock:
        enabled = list(reversed(_enabled))
        _enabled.clear()
        _refused.clear()
    for module_name in enabled:
        try:
            importlib.import_module(module_name).uninstall()
        except Exception as exc:
            internal_error(f"removing the {module_name} integration", exc)


def _enable_framework(module: ModuleType) -> None:
    framework = FRAMEWORKS.get(module.__name__)
    if framework is None:
        return
    version = installed_version(framework.distribution)
    with _lock:
        if framework.integration in _enabled or framework.integration in _refused:
            return
        if version is not None and not framework.supports(version):
            _refused.add(framework.integration)
            refused = True
        else:
            _enabled.append(framework.integration)
            refused = False
    if refused:
        logger.warning(
            "peephole: %s %s is not supported (the integration needs %s): exceptions it "
            "turns into error responses are not captured; everything else works",
            framework.name,
            _dotted(version or ()),
            framework.range(),
        )
        return
    importlib.import_module(framework.integration).install()


def installed_version(distribution: str) -> Optional[Tuple[int, ...]]:
    """The installed release of ``distribution`` as numbers (``5.1rc1`` -> (5, 1)), read from
    its metadata (never from the framework's code); None if that cannot be told."""
    try:
        text = importlib.metadata.version(distribution)
    except Exception:  # no metadata (vendored, frozen): nothing to check against
        return None
    numbers = re.match(r"\d+(?:\.\d+)*", text or "")
    return tuple(int(n) for n in numbers.group().split(".")) if numbers else None


def _dotted(version: Tuple[int, ...]) -> str:
    return ".".join(map(str, version))
