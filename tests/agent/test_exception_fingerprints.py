"""Exception fingerprints keep their exact values: the server groups failures by them, so a
new value for the same failure would split its group (Python 3.9+).

The code that fails is compiled under fixed file and module names, so each fingerprint is the
same on every run and every Python version; each one is checked when it is computed and when
it comes from the cache of traceback shapes.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import pytest
from test_exceptions import Harness

APP_FILE = "/srv/shop/cart.py"
LIBRARY_FILE = "/opt/venv/lib/python3/site-packages/parsing/core.py"

# What both application modules start with: the fingerprints pinned below name these lines.
RUN_AND_TOTAL = """\
def run(function, *args):
    try:
        function(*args)
    except Exception as exc:
        return exc


def total(depth):
    if depth:
        return total(depth - 1)
    raise KeyError("sku")
"""

APP_SOURCE = (
    RUN_AND_TOTAL
    + """

def wrapped():
    try:
        total(2)
    except KeyError as exc:
        raise ValueError("wrapped") from exc


def during_handling():
    try:
        total(0)
    except KeyError:
        raise RuntimeError("while handling")


def through_library(parse):
    return parse("text", lambda: total(1))
"""
)

LIBRARY_SOURCE = """\
def parse(text, callback=None):
    if callback is not None:
        return callback()
    raise ValueError(text)


def run(function, *args):
    try:
        function(*args)
    except Exception as exc:
        return exc
"""


class Events(Harness):
    """A real agent that takes a snapshot of every exception and keeps what it delivers."""

    def __init__(self) -> None:
        super().__init__(exception_interval=0.0, exception_rate=1e9)

    def fingerprints(self, namespace: Dict[str, Any], name: str, *args: Any) -> List[str]:
        """The fingerprints of two failures of ``namespace[name](*args)``, caught by the
        namespace's ``run``: the first computed, the second from the cache (same code)."""
        for _ in range(2):
            self.exceptions.capture(namespace["run"](namespace[name], *args), "test")
        return [event["fingerprint"] for event in self.events[-2:]]


@pytest.fixture
def events() -> Iterator[Events]:
    harness = Events()
    try:
        yield harness
    finally:
        harness.close()


def load(source: str, filename: str, module: str) -> Dict[str, Any]:
    """A fresh module namespace (fresh code objects: nothing is cached for them yet)."""
    namespace: Dict[str, Any] = {} if module == "" else {"__name__": module}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def app(module: str = "shop.cart") -> Dict[str, Any]:
    return load(APP_SOURCE, APP_FILE, module)


def library() -> Dict[str, Any]:
    return load(LIBRARY_SOURCE, LIBRARY_FILE, "parsing.core")


def test_application_frames_give_module_function_and_line_within_the_function(
    events: Events,
) -> None:
    # Recursion: total's locations count once, whatever the depth.
    assert events.fingerprints(app(), "total", 3) == ["74d451be83e79366"] * 2


def test_the_module_name_comes_from_the_file_without_a_name_in_the_globals(
    events: Events,
) -> None:
    assert events.fingerprints(app(module=""), "total", 0) == ["18d87b75faa1b1be"] * 2


def test_a_cause_adds_its_own_type_and_locations(events: Events) -> None:
    assert events.fingerprints(app(), "wrapped") == ["a351feea0e417200"] * 2


def test_an_implicit_context_adds_its_own_type_and_locations(events: Events) -> None:
    assert events.fingerprints(app(), "during_handling") == ["3d5584e3600c44d4"] * 2


def test_library_frames_are_left_out_when_the_application_has_frames(events: Events) -> None:
    parse = library()["parse"]
    assert events.fingerprints(app(), "through_library", parse) == ["338a0182214fece2"] * 2


def test_library_frames_alone_give_module_and_function_without_lines(events: Events) -> None:
    assert events.fingerprints(library(), "parse", "bad") == ["0ad6927a1ee61d9b"] * 2


ORDERS_SOURCE = (
    RUN_AND_TOTAL
    + """

def refund():
    raise KeyError("order")
"""
)


def test_failures_of_one_class_alternating_between_tracebacks_keep_their_own_fingerprints(
    events: Events,
) -> None:
    # A repeat of its class's last traceback is recognised without the cache of shapes: a
    # different, a longer and a shorter traceback of the same class must each miss it.
    orders = load(ORDERS_SOURCE, "/srv/shop/orders.py", "shop.orders")
    calls: List[Tuple[str, Tuple[int, ...]]] = [
        ("total", (2,)),
        ("total", (2,)),
        ("refund", ()),
        ("total", (2,)),
        ("total", (3,)),  # longer
        ("total", (1,)),  # shorter
        ("refund", ()),
        ("refund", ()),
    ]
    for name, args in calls:
        events.exceptions.capture(orders["run"](orders[name], *args), "test")
    total, refund = "d991a4cf9dcbc387", "34f932d1501614d0"
    assert [event["fingerprint"] for event in events.events] == [
        total,
        total,
        refund,
        total,
        total,
        total,
        refund,
        refund,
    ]
