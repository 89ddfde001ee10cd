"""``@uncovered``: the few tests that coverage's own tracing disturbs run with it paused.

dev.py runs the tests under ``coverage run`` (``sys.monitoring`` on 3.12+). Coverage keeps a
record for each code object it sees, so a test that counts live objects around a thousand
probe placements sees those records as a leak; and a test that bounds a capture's wall time
measures the tracer too. Those tests, and only those, pause measurement while they run
(their fixtures are still measured); without coverage the decorator does nothing.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def uncovered(test: F) -> F:
    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        current = _coverage()
        if current is None:
            return test(*args, **kwargs)
        current.stop()
        try:
            return test(*args, **kwargs)
        finally:
            current.start()

    return run  # type: ignore[return-value]  # same signature, through functools.wraps


def _coverage() -> Optional[Any]:
    try:
        import coverage
    except ImportError:  # the floors venv measures nothing
        return None
    return coverage.Coverage.current()
