"""Which loaded file a person's ``file.py`` names.

Paths are matched by suffix at a path-component boundary against the files of loaded
modules, since the deployed path (``/srv/app/src/shop/cart.py``) rarely equals the
repository path (``shop/cart.py``).

A module counts as loaded only once its body has finished: the import system puts a module
in ``sys.modules`` before running it, and a probe placed in that window would see only the
functions defined so far (and, with bytecode injection, not the ones the running body makes
next). Such a probe waits, like one for a module not imported yet.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Callable, Dict, Iterable, List, Optional, Tuple

__all__ = [
    "LocateError",
    "NoSuchFile",
    "NotLoaded",
    "check_kind",
    "loaded_files",
    "matcher",
    "modules_of",
    "normalize_path",
    "path_matches",
    "real_path",
    "resolve_file",
    "spellings",
]

TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".txt", ".xml")


class LocateError(Exception):
    """The probe cannot be placed; ``str()`` is the reason, written for the person.

    ``heals`` says whether the same probe may succeed later without being changed (a file
    that appears on ``sys.path``, a function defined later): such errors are retried.
    """

    heals = False


class NotLoaded(LocateError):
    """No loaded module matches the path yet: the probe waits for the import."""

    heals = True


class NoSuchFile(LocateError):
    """Nothing matches now; ``sys.path`` may still change (``sys.path[0]`` set late, say)."""

    heals = True


def normalize_path(path: str) -> str:
    """``./shop//cart.py`` -> ``shop/cart.py``; absolute paths stay absolute."""
    path = path.strip().replace("\\", "/")
    normalized = os.path.normpath(path).replace("\\", "/")
    while normalized.startswith("./"):
        normalized = normalized[2:]
    return normalized


def path_matches(wanted: str, filename: str) -> bool:
    """Whether ``filename`` is the file ``wanted`` names (suffix at a component boundary)."""
    return matcher(wanted)(filename)


def matcher(wanted: str) -> Callable[[str], bool]:
    """:func:`path_matches` for one ``wanted`` path, to test many files quickly."""
    if os.path.isabs(wanted):
        name = os.path.basename(wanted)
        resolved: List[str] = []  # real_path(wanted), once it is needed

        def same_file(filename: str) -> bool:
            if os.path.normpath(filename) == wanted:
                return True
            # Symbolic links: resolving is slow, so only for files of the same name.
            if os.path.basename(filename) != name:
                return False
            if not resolved:
                resolved.append(real_path(wanted))
            return real_path(filename) == resolved[0]

        return same_file
    suffix = "/" + wanted

    def ends_with(filename: str) -> bool:
        filename = filename.replace("\\", "/")
        return filename == wanted or filename.endswith(suffix)

    return ends_with


def real_path(path: str) -> str:
    """``os.path.realpath`` that never raises."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return path


def spellings(filename: str) -> List[str]:
    """The names one file may go by in ``__file__`` and ``co_filename``."""
    return list(dict.fromkeys((filename, real_path(filename), os.path.abspath(filename))))


def is_initializing(module: types.ModuleType) -> bool:
    """Whether the import system is still running this module's body."""
    try:
        spec = vars(module).get("__spec__")
        return spec is not None and vars(spec).get("_initializing", False) is True
    except TypeError:  # a spec without __dict__: not one of the import system's
        return False


def module_file(module: object) -> Optional[str]:
    """A module's ``__file__`` when it is Python source, read without running its code."""
    if not isinstance(module, types.ModuleType):
        return None
    try:
        filename = vars(module).get("__file__")
    except TypeError:
        return None
    return filename if isinstance(filename, str) and filename.endswith(".py") else None


class _Table:
    """``(file, module name, module)`` of every loaded source module, remade only when
    ``sys.modules`` changed size: placing a probe must not cost a scan of every module
    each time (a replaced entry is noticed where it is used, see :func:`_entries`)."""

    size = -1
    rows: List[Tuple[str, str, types.ModuleType]] = []


def _entries(fresh: bool = False) -> List[Tuple[str, str, types.ModuleType]]:
    """The table; ``fresh`` remakes it even if ``sys.modules`` kept its size (a module that
    got its ``__file__`` late, as ``__main__`` does after ``sitecustomize``)."""
    if (
        fresh
        or _Table.size != len(sys.modules)
        or any(sys.modules.get(name) is not module for _, name, module in _Table.rows[-3:])
    ):
        modules = list(sys.modules.items())
        _Table.rows = [
            (filename, name, module)
            for name, module in modules
            for filename in [module_file(module)]
            if filename is not None and isinstance(module, types.ModuleType)
        ]
        _Table.size = len(modules)
    return _Table.rows


def loaded_files(finished: Optional[str] = None) -> Dict[str, str]:
    """Source files of loaded modules whose body has run: ``{filename: module name}``.

    ``finished`` is a file whose body has just run although the import system does not say
    so yet (the post-import hook runs before ``_initializing`` is cleared).
    """
    files: Dict[str, str] = {}
    for filename, name, module in _entries():
        if filename != finished and is_initializing(module):
            continue
        files.setdefault(filename, name)
    return files


def modules_of(filenames: Iterable[str]) -> List[types.ModuleType]:
    """Loaded modules whose ``__file__`` is one of ``filenames`` (initializing ones too)."""
    wanted = set(filenames)
    found: List[types.ModuleType] = []
    for filename, name, module in _entries():
        current = filename in wanted and sys.modules.get(name) is module
        if current and not any(m is module for m in found):
            found.append(module)
    return found


def check_kind(path: str) -> None:
    """Refuse files that are not Python source, with the reason."""
    lowered = path.lower()
    if lowered.endswith(TEMPLATE_SUFFIXES):
        raise LocateError(
            f"{path} is a template: template engines such as Jinja2 compile templates into "
            "generated code whose lines do not match the template's, so a probe there would "
            "never fire. Place the probe in the Python view or function that renders it."
        )
    if not lowered.endswith(".py"):
        raise LocateError(f"{path} is not a Python source file (.py)")


def resolve_file(path: str, finished: Optional[str] = None) -> str:
    """The one loaded file that ``path`` names.

    Raises :class:`NotLoaded` when no loaded module matches but a file on ``sys.path`` does
    (the module is imported later, or its body is still running), :class:`NoSuchFile` when
    nothing matches, :class:`LocateError` when the path is ambiguous.
    """
    wanted = normalize_path(path)
    check_kind(wanted)
    found: Dict[str, str] = {}
    importing: List[str] = []
    named = matcher(wanted)
    for fresh in (False, True):  # a miss looks again at a remade table
        for filename, name, module in _entries(fresh):
            if not named(filename) or sys.modules.get(name) is not module:
                continue
            if filename != finished and is_initializing(module):
                importing.append(filename)
            else:
                found.setdefault(real_path(filename), filename)
        if found or importing:
            break
    if len(found) == 1:
        return next(iter(found.values()))
    if len(found) > 1:
        candidates = ", ".join(sorted(found.values()))
        raise LocateError(
            f"{path} is ambiguous: it matches {len(found)} loaded files ({candidates}); "
            "give more of the path"
        )
    if importing:
        raise NotLoaded(f"waiting for the import of {importing[0]} to finish")
    on_disk = find_on_sys_path(wanted)
    if on_disk:
        raise NotLoaded(f"waiting for {on_disk} to be imported")
    raise NoSuchFile(f"no such file: no loaded module or file on sys.path matches {path}")


def find_on_sys_path(wanted: str) -> Optional[str]:
    """A file under a ``sys.path`` entry (or one of its parents) that ``wanted`` names."""
    if os.path.isabs(wanted):
        return wanted if os.path.isfile(wanted) else None
    parts = wanted.split("/")
    for entry in list(sys.path):
        if not isinstance(entry, str):
            continue
        base = os.path.abspath(entry or ".")
        # ``src/shop/cart.py`` with ``/srv/app/src`` on sys.path: drop leading components.
        for start in range(len(parts)):
            candidate = os.path.join(base, *parts[start:])
            if os.path.isfile(candidate) and path_matches(wanted, candidate):
                return candidate
    return None
