"""The agent's one post-import hook: for framework integrations and for waiting probes.

It sits at the front of ``sys.meta_path`` only while something waits for an import: a
callback for a module name (:func:`on_import`, used by integrations and exception hooks) or
a watcher for files (:meth:`ImportHook.watch`, used by probes whose module is not loaded).
It finds nothing itself: it asks the finders behind it, and for a module someone waits for,
gives the import system the same spec with a loader of its own for that one import. The
shared loader object (a ``zipimporter`` serves a whole archive) is never modified.

For a file a watcher wants, when the loader runs a code object it can hand out
(``SourceFileLoader``, ``SourcelessFileLoader``, ``zipimporter``), the hook gets the module's
code first and lets the watcher arm it *before* the body runs, so lines run during the import
(module level, or in functions the body calls) are hit too. Callbacks run after the body.
"""

from __future__ import annotations

import sys
import threading
import types
import zipimport
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec, SourceFileLoader
from typing import Any, Callable, Dict, List, Optional, Sequence

from peephole.agent.health import internal_error
from peephole.agent.placement.registry import REGISTRY

__all__ = ["HOOK", "Callback", "FileWatcher", "cancel", "on_import"]

Callback = Callable[[types.ModuleType], None]
_RUNS_CODE = SourceFileLoader.exec_module  # _LoaderBasics.exec_module: exec(get_code(name))


class FileWatcher:
    """What the hook asks of whoever waits for files (the agent)."""

    def wants(self, filename: str) -> bool:
        """Whether something waits for the module whose source is ``filename``."""
        raise NotImplementedError

    def before(self, filename: str, code: types.CodeType) -> types.CodeType:
        """Arm ``code`` before it runs as the module body; returns the code to run."""
        raise NotImplementedError

    def after(self, filename: str) -> None:
        """The module body of ``filename`` has run."""
        raise NotImplementedError


def runs_code(loader: object) -> bool:
    """Whether ``loader`` executes a module as ``exec(loader.get_code(name), namespace)``."""
    if getattr(type(loader), "exec_module", None) is _RUNS_CODE:
        return True
    # 3.9's zipimporter has only load_module, which does the same with the code it gets.
    return isinstance(loader, zipimport.zipimporter) and not hasattr(loader, "exec_module")


class ImportHook(MetaPathFinder):
    """One finder for every import the agent waits for."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._callbacks: Dict[str, List[Callback]] = {}
        self._watchers: List[FileWatcher] = []
        self._searching = threading.local()

    # --- who waits ----------------------------------------------------------------------

    def on_import(self, name: str, callback: Callback) -> None:
        """Call ``callback(module)`` once module ``name`` is loaded: now, or after its import."""
        with self._lock:
            module = sys.modules.get(name)
            if module is None:
                self._callbacks.setdefault(name, []).append(callback)
                self._sync()
                return
        _run(callback, module)

    def cancel(self, callback: Callback) -> None:
        """Forget ``callback`` for every module it waits for."""
        with self._lock:
            for name in list(self._callbacks):
                waiting = [c for c in self._callbacks[name] if c != callback]
                if waiting:
                    self._callbacks[name] = waiting
                else:
                    del self._callbacks[name]
            self._sync()

    def watch(self, watcher: FileWatcher) -> None:
        with self._lock:
            if watcher not in self._watchers:
                self._watchers.append(watcher)
            self._sync()

    def unwatch(self, watcher: FileWatcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)
            self._sync()

    def installed(self) -> bool:
        return self in sys.meta_path

    def _sync(self) -> None:
        """On ``sys.meta_path`` exactly while something waits."""
        meta_path: List[Any] = sys.meta_path
        waiting = bool(self._callbacks or self._watchers)
        if waiting and self not in meta_path:
            meta_path.insert(0, self)
        elif not waiting and self in meta_path:
            meta_path.remove(self)

    # --- the finder ---------------------------------------------------------------------

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[types.ModuleType] = None,
    ) -> Optional[ModuleSpec]:
        if getattr(self._searching, "active", False):
            return None  # a finder behind us that asks the others must not loop back
        if fullname not in self._callbacks and not self._watchers:
            return None
        self._searching.active = True
        try:
            spec = self._others(fullname, path, target)
            if spec is not None and self._wanted(spec):
                spec.loader = _OneImport(self, spec.loader, spec)
            return spec
        except Exception:
            return None  # let the import system report it as it would without us
        finally:
            self._searching.active = False

    def _others(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[types.ModuleType],
    ) -> Optional[ModuleSpec]:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                return None  # a legacy finder: let the import system ask it as usual
            spec: Optional[ModuleSpec] = find(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _wanted(self, spec: ModuleSpec) -> bool:
        loader = spec.loader
        if loader is None:
            return False
        if spec.name in self._callbacks and hasattr(loader, "exec_module"):
            return True
        return runs_code(loader) and self._watcher_for(spec.origin) is not None

    def _watcher_for(self, origin: object) -> Optional[List[FileWatcher]]:
        if not isinstance(origin, str):
            return None
        wanting = [w for w in list(self._watchers) if _asks(w, origin)]
        return wanting or None

    # --- around one module body ---------------------------------------------------------

    def run_body(self, spec: ModuleSpec, loader: Any, module: types.ModuleType) -> None:
        """Execute the module, with watchers arming its code first when they want it."""
        origin = spec.origin
        if not (runs_code(loader) and isinstance(origin, str)):
            loader.exec_module(module)
        else:
            watchers = self._watcher_for(origin) or []
            code = loader.get_code(module.__name__)
            if code is None:
                raise ImportError(f"cannot load the code of {spec.name!r}", name=spec.name)
            if watchers:
                REGISTRY.importing(origin, code)
            try:
                for watcher in watchers:
                    code = _before(watcher, origin, code)
                exec(code, vars(module))
            finally:
                if watchers:
                    REGISTRY.imported(origin)
            for watcher in watchers:
                _after(watcher, origin)
        with self._lock:
            callbacks = self._callbacks.pop(spec.name, [])
            self._sync()
        for callback in callbacks:
            _run(callback, module)


class _OneImport(Loader):
    """The loader of one import: the real one, with the hook around its module body."""

    def __init__(self, hook: ImportHook, loader: Any, spec: ModuleSpec) -> None:
        self._hook = hook
        self._loader = loader
        self._spec = spec

    def create_module(self, spec: ModuleSpec) -> Optional[types.ModuleType]:
        create = getattr(self._loader, "create_module", None)
        module: Optional[types.ModuleType] = create(spec) if create is not None else None
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The module and its spec name the real loader before its body runs.
        self._spec.loader = self._loader
        try:
            if vars(module).get("__loader__") is self:
                module.__loader__ = self._loader
        except Exception:
            pass
        self._hook.run_body(self._spec, self._loader, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _asks(watcher: FileWatcher, origin: str) -> bool:
    try:
        return watcher.wants(origin)
    except Exception as exc:
        internal_error("asking which imports probes wait for", exc)
        return False


def _before(watcher: FileWatcher, origin: str, code: types.CodeType) -> types.CodeType:
    try:
        armed = watcher.before(origin, code)
    except Exception as exc:
        internal_error("arming a module before its body runs", exc)
        return code
    return armed if isinstance(armed, types.CodeType) else code


def _after(watcher: FileWatcher, origin: str) -> None:
    try:
        watcher.after(origin)
    except Exception as exc:
        internal_error("arming probes after an import", exc)


def _run(callback: Callback, module: types.ModuleType) -> None:
    try:
        callback(module)
    except Exception as exc:  # an integration that cannot install must not break an import
        internal_error(f"a callback after importing {vars(module).get('__name__')}", exc)


HOOK = ImportHook()
on_import = HOOK.on_import
cancel = HOOK.cancel
