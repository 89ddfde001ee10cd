"""What the agent waits for: the files of waiting probes, and when to look again.

The import hook asks, for every module the application imports while a probe waits, whether
a waiting probe names its file. :class:`WaitedFiles` answers with one dictionary look-up by
file name: the matchers are made once per set of waited paths, not once per import.

A probe whose path matches no file at all (a typo, or a file on a ``sys.path`` entry not set
yet) is looked for again by housekeeping; :class:`Retries` spaces those looks out (1 s, 2 s,
4 s ... up to a minute), since each costs a scan of the loaded modules and a walk of
``sys.path``. A probe looks again at once when ``sys.path`` changes or a module of its file
name is imported.
"""

from __future__ import annotations

import sys
from typing import Callable, Dict, FrozenSet, Hashable, Iterable, List, Optional, Tuple

from peephole.agent.clock import NS, Clock
from peephole.agent.placement.paths import matcher, normalize_path

__all__ = ["FIRST_RETRY_S", "LAST_RETRY_S", "Retries", "WaitedFiles", "base_name"]

FIRST_RETRY_S = 1.0
LAST_RETRY_S = 60.0


def base_name(path: str) -> str:
    """The last component of ``path``, with either separator."""
    return path.replace("\\", "/").rpartition("/")[2]


class WaitedFiles:
    """Matchers for the paths waiting probes name, grouped by file name.

    Read from importing threads without a lock: :meth:`update` builds a new table and swaps
    it in with one assignment."""

    def __init__(self) -> None:
        self._paths: FrozenSet[str] = frozenset()
        self._by_name: Dict[str, List[Callable[[str], bool]]] = {}
        self.builds = 0  # how many times the matchers were made (tests count them)

    def update(self, paths: Iterable[str]) -> bool:
        """Wait for ``paths`` (as probes spell them); returns whether the set changed."""
        wanted = frozenset(paths)
        if wanted == self._paths:
            return False
        by_name: Dict[str, List[Callable[[str], bool]]] = {}
        for path in wanted:
            normalized = normalize_path(path)
            by_name.setdefault(base_name(normalized), []).append(matcher(normalized))
        self._by_name, self._paths = by_name, wanted
        self.builds += 1
        return True

    def named(self, filename: str) -> bool:
        """Whether a waited path has the file name of ``filename`` (it may still differ)."""
        return base_name(filename) in self._by_name

    def wants(self, filename: str) -> bool:
        """Whether a waited path names ``filename``."""
        matchers = self._by_name.get(base_name(filename))
        return matchers is not None and any(match(filename) for match in matchers)


class Retries:
    """When housekeeping may next try to place a probe whose path matched nothing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # key: (monotonic ns when due, the last delay in seconds, the file name looked for)
        self._due: Dict[Hashable, Tuple[int, float, str]] = {}
        self._sys_path: Optional[Tuple[object, ...]] = None

    def due(self, key: Hashable) -> bool:
        """Whether ``key`` may be tried now (always, unless it failed and waits)."""
        entry = self._due.get(key)
        return entry is None or self._clock.monotonic_ns() >= entry[0]

    def failed(self, key: Hashable, name: str) -> None:
        """``key``, looking for a file called ``name``, matched nothing again: wait twice as
        long as last time (at most a minute)."""
        entry = self._due.get(key)
        delay = FIRST_RETRY_S if entry is None else min(entry[1] * 2, LAST_RETRY_S)
        self._due[key] = (self._clock.monotonic_ns() + int(delay * NS), delay, name)

    def forget(self, key: Hashable) -> None:
        """``key`` was placed, removed, or should be tried at once."""
        self._due.pop(key, None)

    def forget_named(self, name: str) -> None:
        """A module of file name ``name`` is being imported: what looks for it tries again."""
        for key in [k for k, entry in list(self._due.items()) if entry[2] == name]:
            self._due.pop(key, None)

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        """Drop what is not waiting any more; everything retries at once when ``sys.path``
        changed (the file may be found now)."""
        current = tuple(sys.path)
        if current != self._sys_path:
            self._sys_path = current
            self._due.clear()
            return
        keep = set(keys)
        for key in [k for k in list(self._due) if k not in keep]:
            del self._due[key]
