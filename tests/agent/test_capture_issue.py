"""The "Speed" issue's snapshot, pinned: every capture of it, cold or from the Capturer's
caches, is the same JSON, byte for byte (the caches only make it cheaper)."""

# ruff: noqa: F841 - the leaf's locals are only read through its frame
from __future__ import annotations

import hashlib
import json
import sys
import types
from typing import Any, Callable, Dict, List

from peephole.agent.safe.capture import Capturer, stack_of
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits


class Order:
    def __init__(self) -> None:
        for index in range(10):
            setattr(self, f"field{index}", index if index % 2 else f"value {index}")


def _deep(depth: int, leaf: Callable[[], Any]) -> Any:
    if depth:
        return _deep(depth - 1, leaf)
    return leaf()


def _leaf(capture: Callable[[types.FrameType], Any]) -> Any:
    """The issue's leaf: its ten locals and the capture (kept out of f_locals' values)."""
    user_id = 1042
    count = 3
    retries = 0
    total = 150.25
    paid = True
    name = "checkout"
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    order = Order()
    items = [1, 2, 3, 4, 5]
    limit = 100
    return capture(sys._getframe())


def _captures(capturer: Capturer, times: int) -> List[Dict[str, Any]]:
    """``times`` captures of a 25-frame stack (20 recorded, the locals of the top three),
    each of a fresh leaf frame, as the issue's workload runs them."""
    results: List[Dict[str, Any]] = []

    def capture(frame: types.FrameType) -> None:
        results.append(capturer.frames(stack_of(frame, 20), range(3)))

    for _ in range(times):
        _deep(20, lambda: _leaf(capture))
    return results


def _expected_leaf_locals() -> Dict[str, Any]:
    prices = [[{"t": "str", "v": f"sku-{i}"}, {"t": "int", "v": i * 10}] for i in range(50)]
    fields: Dict[str, Any] = {}
    for index in range(10):
        value = index if index % 2 else f"value {index}"
        fields[f"field{index}"] = {"t": "int" if index % 2 else "str", "v": value}
    return {
        "capture": {"t": "function", "v": "_captures.<locals>.capture"},
        "user_id": {"t": "int", "v": 1042},
        "count": {"t": "int", "v": 3},
        "retries": {"t": "int", "v": 0},
        "total": {"t": "float", "v": 150.25},
        "paid": {"t": "bool", "v": True},
        "name": {"t": "str", "v": "checkout"},
        "prices": {"t": "dict", "len": 50, "entries": prices},
        "order": {"t": f"{__name__}.Order", "fields": fields},
        "items": {"t": "list", "len": 5, "items": [{"t": "int", "v": i} for i in range(1, 6)]},
        "limit": {"t": "int", "v": 100},
    }


def test_issue_snapshot_is_the_same_on_every_capture() -> None:
    results = _captures(Capturer(Limits(), Redactor()), 5)
    texts = [json.dumps(result, sort_keys=False) for result in results]
    assert len(set(texts)) == 1
    first = results[0]
    frames = first["frames"]
    assert [frame["function"].rsplit(".", 1)[-1] for frame in frames[:4]] == [
        "_leaf",
        "<lambda>",
        "_deep",
        "_deep",
    ]
    assert [list(frame) for frame in frames[:4]] == [
        ["file", "line", "function", "module", "locals"],
        ["file", "line", "function", "module", "locals"],
        ["file", "line", "function", "module", "locals"],
        ["file", "line", "function", "module"],
    ]
    assert all(frame["module"] == __name__ and frame["file"] == __file__ for frame in frames)
    assert len(frames) == 20
    assert json.dumps(frames[0]["locals"]) == json.dumps(_expected_leaf_locals())
    assert frames[2]["locals"] == {
        "depth": {"t": "int", "v": 0},
        "leaf": {"t": "function", "v": "_captures.<locals>.<lambda>"},
    }
    assert first["watches"] == [] and "cut" not in first
    # The size counts each frame's file name, which depends on where the checkout is.
    size_without_files = first["size"] - len(frames) * len(json.dumps(__file__))
    assert size_without_files == (6968 if sys.version_info >= (3, 11) else 6949)
    text = json.dumps({**first, "size": size_without_files})
    digest = hashlib.sha256(text.replace(json.dumps(__file__)[1:-1], "FILE").encode())
    assert digest.hexdigest() == DIGEST[sys.version_info >= (3, 11)]


# The SHA-256 of the whole result (file names replaced, the size without them), as the capture
# before the issue's optimisations made it (83c289d gives the same); 3.11 names frames by
# their code's qualified name.
DIGEST = {
    False: "ea56012a3d6faa5fba4a340a08cedd25bb5a75ed3b742c131b4ca4bd205881b0",
    True: "9ecd8d1b6403309f722db7189231fad8cf2b9361865b7ee0ebcb350bca5a82cb",
}


class _LoudStr(str):
    """A str whose comparison and hash are the application's code: never to be run."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("the capture compared an application's str")

    def __hash__(self) -> int:
        raise AssertionError("the capture hashed an application's str")


def test_a_remembered_mapping_is_shown_only_for_the_same_pairs() -> None:
    capturer = Capturer(Limits(), Redactor())
    plain = {"a": 1, "b": "x", "c": 3}
    for _ in range(4):  # the pairs, then the whole mapping, remembered
        assert capturer.value(dict(plain)) == capturer.value(plain)
    changed = capturer.value({"a": 1, "b": "y", "c": 3})
    assert changed["entries"][1][1] == {"t": "str", "v": "y"}
    longer = capturer.value({"a": 1, "b": "x", "c": 3, "d": 4})
    assert longer["len"] == 4 and len(longer["entries"]) == 4
    loud = capturer.value({"a": 1, "b": _LoudStr("x"), "c": 3})  # same text, not a str
    assert loud["entries"][1][1]["t"] == f"{__name__}._LoudStr"
    assert capturer.value({"a": True, "b": "x", "c": 3})["entries"][0][1] == {
        "t": "bool",
        "v": True,
    }
    again = capturer.value(dict(plain))
    assert again == capturer.value(plain) and again["entries"] is not changed["entries"]


def test_a_remembered_mapping_is_still_hidden_inside_a_secret_collection() -> None:
    capturer = Capturer(Limits(), Redactor())
    values = {"session": "abc123", "user": "ada"}
    for _ in range(4):
        shown = capturer.value(dict(values))
    assert shown["entries"][1][1] == {"t": "str", "v": "ada"}
    environ = {"HTTP_COOKIE": "x", "headers": dict(values)}
    capturer.redactor.secret_ids = frozenset({id(environ)})  # as the process environment
    hidden = capturer.value(environ)
    assert hidden["entries"][1][1]["entries"][1][1] == {"t": "str", "cut": "redacted"}
