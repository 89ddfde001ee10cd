"""Hooks into web frameworks and the standard library, enabled when the application imports them.

The agent never imports a framework: each integration is tied to the module that defines
the hook point (``flask.signals``, ``django.core.signals``, ...). If that module is already
loaded, the integration is enabled at once; otherwise the agent's one post-import hook
(:mod:`peephole.agent.placement.imports`) waits for the application to import it and
enables the integration right after the module has run.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import List

from peephole.agent.health import internal_error
from peephole.agent.placement.imports import Callback, cancel, on_import

__all__ = ["Callback", "cancel", "disable_frameworks", "enable_frameworks", "on_import"]

# Framework hook point -> integration module (each has ``install()`` and ``uninstall()``).
FRAMEWORKS = {
    "flask.signals": "peephole.agent.integrations.flask",
    "django.core.signals": "peephole.agent.integrations.django",
    "starlette.middleware.errors": "peephole.agent.integrations.starlette",
}

_lock = threading.Lock()
_enabled: List[str] = []  # integration modules installed, in order


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
    for module_name in enabled:
        try:
            importlib.import_module(module_name).uninstall()
        except Exception as exc:
            internal_error(f"removing the {module_name} integration", exc)


def _enable_framework(module: ModuleType) -> None:
    integration = FRAMEWORKS.get(module.__name__)
    if integration is None:
        return
    with _lock:
        if integration in _enabled:
            return
        _enabled.append(integration)
    importlib.import_module(integration).install()
