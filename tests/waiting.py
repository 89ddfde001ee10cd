"""The one way a test waits: poll a condition until it holds or a deadline passes.

A fixed sleep followed by an assertion either wastes time or fails on a slow machine; a
bounded poll returns as soon as the system got there and fails with a reason when it never
does. ``tests/docs/test_test_rules.py`` keeps every other sleep in the suite inside such a
loop. For "nothing happens" assertions, wait for a positive signal that proves the system
moved past the point (a later event, a status, a heartbeat) instead of waiting for silence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, TypeVar, Union

T = TypeVar("T")
What = Union[str, Callable[[], str]]  # a callable is asked only on failure (the state then)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: What = "the condition never held",
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` until it returns something true and return that; fail with
    ``what`` once ``timeout`` seconds passed (it is always called at least once more then)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_said(what, timeout))
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: What = "the condition never held",
    interval: float = 0.02,
) -> T:
    """:func:`wait_until` inside a coroutine: the event loop runs between checks."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(_said(what, timeout))
        await asyncio.sleep(interval)


def _said(what: What, timeout: float) -> str:
    return f"{what() if callable(what) else what} (waited {timeout:g} s)"
