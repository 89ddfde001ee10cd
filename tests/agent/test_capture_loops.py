"""The capture's inner loops in C (``_speedups``) against their Python (``capture_loops``).

A capture must come out byte for byte the same whichever loops run, from a Capturer that has
seen nothing and from one whose caches hold earlier values: the same values are captured in
turns, changed between turns, by two Capturers, one per implementation.
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
import threading
import types
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peephole.agent.safe import capture, capture_loops
from peephole.agent.safe.capture import Capturer
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits

LOOPS = ("mapping_entries", "named_values", "item_nodes", "stack_of", "frame_records")
_C = importlib.import_module("peephole.agent._speedups")


@pytest.fixture
def python_loops(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the capture use the Python loops whatever is built (dev.py builds the C ones)."""
    for name in LOOPS:
        monkeypatch.setattr(capture, name, getattr(capture_loops, name))
    yield


def _c_loops() -> Dict[str, Any]:
    return {name: getattr(_C, name) for name in LOOPS}


def _captures(values: List[Any], loops: Dict[str, Any], limits: Limits) -> List[str]:
    """JSON of each value captured in turn by one Capturer using ``loops``, twice over, with
    the bytes the capture counted."""
    saved = {name: getattr(capture, name) for name in LOOPS}
    for name, loop in loops.items():
        setattr(capture, name, loop)
    try:
        capturer = Capturer(limits, Redactor())
        # As a watch's value: the result says the size the capture counted, too.
        return [json.dumps(capturer.frames([], (), [("v", value)])) for value in values + values]
    finally:
        for name, loop in saved.items():
            setattr(capture, name, loop)


def _python() -> Dict[str, Any]:
    return {name: getattr(capture_loops, name) for name in LOOPS}


class Order:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class Slotted:
    __slots__ = ("token", "total", "unset")

    def __init__(self) -> None:
        self.token = "ghp_" + "b" * 36
        self.total = 5


TOKEN = "ghp_" + "a" * 36
CARD = 4111111111111111
LONG_KEY = "k" * 80  # longer than a key the Capturer keeps


def _examples() -> List[Any]:
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    changed = {**prices, "sku-3": 31, "sku-4": "four", "sku-5": 2.5, "sku-6": None}
    return [
        prices,
        changed,
        prices,
        {"password": "hunter2", "api_key": 5, "token": TOKEN, "note": TOKEN, "card": CARD},
        {"password": None, "secret": True, "pin": 1234, "n": 10**30, "m": -(10**12)},
        {LONG_KEY: 1, LONG_KEY + "x": "a", 1: 2, (1, "a"): 3, b"password": b"x", b"k": 1},
        {"nested": {"a": [1, "a", TOKEN, (1, 2)], "b": {"c": {"d": {"e": {"f": 1}}}}}},
        [1, 2, 3, "a", "b", TOKEN, 10**13, True, None, 1.5, b"x", [1], ("a", "b")],
        ("Authorization", "Bearer abc.def"),
        [("Authorization", "Bearer abc"), ("Content-Type", "text/plain")],
        Order(user_id=1, password="x", name="checkout", __hidden__=1, total=1.5, paid=True),
        Order(**{f"field{index}": index for index in range(30)}),
        Slotted(),
        {"shared": prices, "again": prices},
        [prices, prices],
        {"a": "x", "b": "x", "c": "y" * 300},
    ]


@pytest.mark.parametrize("max_bytes", [65536, 2000, 300])
def test_the_loops_capture_as_their_python_does(max_bytes: int) -> None:
    limits = Limits(max_bytes=max_bytes)
    values = _examples()
    assert _captures(values, _c_loops(), limits) == _captures(values, _python(), limits)


_keys = st.one_of(
    st.sampled_from(["a", "b", "price", "password", "token", "__dunder__", LONG_KEY]),
    st.integers(-3, 3),
    st.binary(max_size=3),
)
_scalars = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([10**12, -(10**12), CARD, 10**40, True, False, None, 1.5, TOKEN]),
    st.sampled_from(["", "a", "b", "password=hunter2", "x" * 70]),
    st.binary(max_size=4),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=6),
        st.dictionaries(st.sampled_from(["x", "password", "__d__", "y"]), inner, max_size=4).map(
            lambda fields: Order(**fields)
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_values, min_size=1, max_size=4))
def test_any_values_are_captured_as_the_python_loops_capture_them(values: List[Any]) -> None:
    limits = Limits(max_items=4, max_bytes=1500)
    assert _captures(values, _c_loops(), limits) == _captures(values, _python(), limits)


def _frame() -> types.FrameType:
    user_id = 1042  # noqa: F841 - the locals are read through the frame
    password = "hunter2"  # noqa: F841
    prices = {f"sku-{index}": index for index in range(5)}  # noqa: F841
    order = Order(total=1.5)  # noqa: F841
    __secret__ = 1  # noqa: F841
    return sys._getframe()


def _nested(depth: int) -> types.FrameType:
    return _frame() if depth == 0 else _nested(depth - 1)


def _generated_frame() -> types.FrameType:
    """A suspended generator's frame."""

    def generator() -> Iterator[types.FrameType]:
        yield sys._getframe()

    return next(generator())


def _thread_frame() -> types.FrameType:
    """A frame of a thread that has ended: its stack ends (f_back None) below the test's."""
    frames: List[types.FrameType] = []
    thread = threading.Thread(target=lambda: frames.append(_nested(1)))
    thread.start()
    thread.join()
    return frames[0]


def test_stacks_and_locals_are_captured_as_their_python_captures_them(
    python_loops: None,
) -> None:
    frame = _nested(5)
    exec_frame: types.FrameType = eval("sys._getframe()", {"sys": sys}, {"x": 1})
    module_frame: types.FrameType = eval("sys._getframe()", {"sys": sys, "__name__": 5})
    # (none of them reaching the test's frame, whose line is not the same the second time)
    cases = [(frame, 3), (frame, 7), (frame, 0), (None, 5), (_generated_frame(), 1)]
    cases += [(exec_frame, 1), (module_frame, 1), (_thread_frame(), 50)]

    def capture_all() -> List[Any]:
        capturer = Capturer(Limits(), Redactor())
        captured: List[Any] = []
        for start, count in cases + cases:  # the second time from the code records kept
            stack = capture.stack_of(start, count)
            captured.append([(id(f), line) for f, line in stack])
            captured.append(capturer.frames(stack, [0, 2]))
        return captured

    expected = capture_all()
    for name, loop in _c_loops().items():
        setattr(capture, name, loop)  # python_loops puts them back
    capture._codes.clear()
    assert capture_all() == expected


def test_the_loops_refuse_arguments_they_cannot_read() -> None:
    walk = Capturer(Limits(), Redactor()).value
    key_info = Capturer(Limits(), Redactor()).key_info
    with pytest.raises(TypeError):
        _C.mapping_entries((("a", 1),), {}, key_info, {}, True, walk, 1, None)  # a tuple of pairs
    with pytest.raises(TypeError):
        _C.mapping_entries([("a", 1, 2)], {}, key_info, {}, True, walk, 1, None)  # not a pair
    with pytest.raises(TypeError):
        _C.named_values([("a", 1)], {}, 5, {}, len, {}, walk, 0, None)  # an argument short
    with pytest.raises(TypeError):
        _C.item_nodes(iter([1]), {}, walk, 0, None)  # not a list or tuple
    with pytest.raises(TypeError):  # a cache entry of the wrong shape
        _C.mapping_entries([("a", 1)], {"a": (1, 2)}, key_info, {}, True, walk, 1, None)
    with pytest.raises(TypeError):
        _C.stack_of("a frame", 5)
    with pytest.raises(TypeError):
        _C.frame_records([(1, 2)], {}, capture._code_info)
    with pytest.raises(TypeError):
        _C.frame_records([(sys._getframe(), 2)], {}, lambda code, globals_: None)
    frame = sys._getframe()  # a kept record that is not a dict is made again, not copied
    spoiled = {id(frame.f_code): (frame.f_code, "not a record", 10, frame.f_globals)}
    records, _ = _C.frame_records([(frame, 2)], spoiled, capture._code_info)
    assert records[0]["line"] == 2 and records[0]["function"].endswith("cannot_read")


def test_an_error_in_the_capture_code_goes_through_the_loops() -> None:
    def failing(*args: Any) -> Any:
        raise LookupError("walk failed")

    with pytest.raises(LookupError):
        _C.item_nodes([1.5], {}, failing, 0, None)
    with pytest.raises(LookupError):
        _C.mapping_entries([(1, 2)], {}, failing, {}, True, failing, 1, None)
    with pytest.raises(LookupError):  # a new key's info
        _C.mapping_entries([("new", 2)], {}, failing, {}, True, failing, 1, None)
    with pytest.raises(LookupError):
        _C.named_values([("a", 1.5)], {}, 5, {"a": 5}, len, {}, failing, 0, None, failing)
    with pytest.raises(LookupError):
        _C.named_values([("a", 1)], {}, 5, {}, failing, {}, failing, 0, None, failing)


def test_the_loops_give_back_every_reference() -> None:
    """Every reference the loops take is given back, on success and on failure."""
    capturer = Capturer(Limits(), Redactor())
    key_info = capturer.key_info
    key, text, other = "price-key", "a short text", object()
    values: List[Any] = [
        {key: 5, "b": text, "c": other, 1: 2, "password": text},
        Order(price=5, note=text, other=other, password=text),
        [text, 5, other, (text, other)],
    ]
    watched: Tuple[Any, ...] = (key, text, other)

    def failing(*args: Any) -> Any:
        raise LookupError("walk failed")

    def run(count: int) -> None:
        for index in range(count):
            values[0][key] = index % 3  # the key's entry replaced, then reused
            for value in values:
                capturer.value(value)
            with pytest.raises(LookupError):
                _C.item_nodes([text, other], {}, failing, 0, None)
            with pytest.raises(LookupError):
                _C.mapping_entries([(key, other)], {}, key_info, {}, True, failing, 1, None)
            with pytest.raises(LookupError):
                _C.named_values([(key, other)], {}, 5, {}, len, {}, failing, 0, None, 0)

            stack = capture.stack_of(sys._getframe(), 10)
            capture.frame_records(stack, capture._codes, capture._code_info)
            with pytest.raises(LookupError):
                capture.frame_records(stack, {}, failing)

    run(100)
    gc.collect()
    watched += (sys._getframe(), sys._getframe().f_code)
    before = [sys.getrefcount(item) for item in watched]
    run(5_000)
    gc.collect()
    assert [sys.getrefcount(item) for item in watched] == before
