"""Hooks into web frameworks and the standard library, enabled when the application imports them.

The agent never imports a framework: each integration is tied to the module that defines
the hook point (``flask.signals``, ``django.core.signals``, ...). If that module is already
loaded, the integration is enabled at once; otherwise a finder on ``sys.meta_path`` waits for
the application to import it and enables the integration right after the module has run.
"""

from __future__ import annotations

import importlib
import sys
import threading
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Sequence

from peephole.agent.health import internal_error

Callback = Callable[[ModuleType], None]

# Framework hook point -> integration module (each has ``install()`` and ``uninstall()``).
FRAMEWORKS = {
    "flask.signals": "peephole.agent.integrations.flask",
    "django.core.signals": "peephole.agent.integrations.django",
    "starlette.middleware.errors": "peephole.agent.integrations.starlette",
}

_lock = threading.RLock()
_callbacks: Dict[str, List[Callback]] = {}
_enabled: List[str] = []  # integration modules installed, in order
_searching = threading.local()


def on_import(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` once module ``name`` is loaded: now, or right after its import."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _callbacks.setdefault(name, []).append(callback)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    _run(callback, module)


def cancel(callback: Callback) -> None:
    """Forget ``callback`` for every module it waits for; drop the finder when none is left."""
    with _lock:
        for name in list(_callbacks):
            waiting = [c for c in _callbacks[name] if c != callback]
            if waiting:
                _callbacks[name] = waiting
            else:
                del _callbacks[name]
        if not _callbacks and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


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


def _run(callback: Callback, module: ModuleType) -> None:
    try:
        callback(module)
    except Exception:
        pass  # an integration that cannot install must not break the application's import


class _PostImportFinder(MetaPathFinder):
    """Finds nothing itself: asks the other finders, then wraps the loader of watched modules
    so the callbacks run after the module's code (the loader is put back afterwards)."""

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType] = None,
    ) -> Optional[ModuleSpec]:
        if fullname not in _callbacks or getattr(_searching, "active", False):
            return None
        _searching.active = True  # another finder that asks the others must not loop back
        try:
            return self._find(fullname, path, target)
        finally:
            _searching.active = False

    def _find(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[ModuleType],
    ) -> Optional[ModuleSpec]:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            try:
                spec = find(fullname, path, target)
            except Exception:
                return None  # let the import machinery report it as it would without us
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                spec.loader = _CallbackLoader(loader, spec)
            return spec
        return None


class _CallbackLoader(Loader):
    def __init__(self, loader: Any, spec: ModuleSpec) -> None:
        self._loader = loader
        self._spec = spec

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        create = getattr(self._loader, "create_module", None)
        module: Optional[ModuleType] = create(spec) if create is not None else None
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._spec.loader = self._loader
        try:
            module.__loader__ = self._loader
        except Exception:
            pass
        self._loader.exec_module(module)
        with _lock:
            callbacks = _callbacks.pop(self._spec.name, [])
            if not _callbacks and _FINDER in sys.meta_path:
                sys.meta_path.remove(_FINDER)
        for callback in callbacks:
            _run(callback, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_FINDER = _PostImportFinder()
