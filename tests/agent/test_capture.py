"""Capture: the value format, every kind of cut, references, redaction, frames and budget."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import sys
import types
from typing import Any, Dict, List

import pytest

from peephole.agent.safe.capture import Capturer, safe_type_name, stack_of
from peephole.agent.safe.expressions import EvaluationError
from peephole.agent.safe.redaction import MASK, Redactor
from peephole.protocol import CUTS, Limits


def capturer(**limits: Any) -> Capturer:
    return Capturer(Limits(**limits), Redactor())


def resolve(document: Any, pointer: str) -> Any:
    """Follow a JSON Pointer (RFC 6901) inside ``document``."""
    node = document
    if not pointer:
        return node
    for raw in pointer.lstrip("/").split("/"):
        segment = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    return node


def cuts_in(node: Any) -> List[str]:
    found: List[str] = []
    if isinstance(node, dict):
        if "cut" in node:
            found.append(node["cut"])
        for value in node.values():
            found += cuts_in(value)
    elif isinstance(node, list):
        for value in node:
            found += cuts_in(value)
    return found


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


class Slotted:
    __slots__ = ("a", "b", "unset")

    def __init__(self) -> None:
        self.a = 1
        self.b = "two"


class Color(enum.Enum):
    RED = 1


class Tag(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, {"t": "int", "v": 3}),
        (-2.5, {"t": "float", "v": -2.5}),
        (True, {"t": "bool", "v": True}),
        (None, {"t": "NoneType", "v": None}),
        ("abc", {"t": "str", "v": "abc"}),
        (b"a\x00", {"t": "bytes", "v": "a\\x00", "len": 2}),
        (float("inf"), {"t": "float", "v": "inf"}),
    ],
)
def test_scalars(value: Any, expected: Dict[str, Any]) -> None:
    assert capturer().value(value) == expected


def test_huge_int_is_shown_by_size() -> None:
    assert capturer().value(1 << 1000) == {"t": "int", "bits": 1001, "cut": "length"}


def test_long_string_is_truncated_and_marked() -> None:
    node = capturer(max_string=10).value("x" * 1000)
    assert node == {"t": "str", "v": "x" * 10, "len": 1000, "cut": "length"}


def test_list_items_limit() -> None:
    node = capturer(max_items=3).value(list(range(10)))
    assert node["len"] == 10
    assert [item["v"] for item in node["items"]] == [0, 1, 2]
    assert node["omitted"] == 7
    assert node["cut"] == "items"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (frozenset({1, 2}), "frozenset"),
        (collections.deque([1, 2]), "collections.deque"),
    ],
)
def test_sequences_and_sets(value: Any, type_name: str) -> None:
    node = capturer().value(value)
    assert node["t"] == type_name
    assert sorted(item["v"] for item in node["items"]) == [1, 2]


def test_dict_entries_and_keys() -> None:
    node = capturer().value({"a": 1, 2: "b", (1, "x"): None, Point: 3})
    keys = [entry[0] for entry in node["entries"]]
    assert keys[0] == {"t": "str", "v": "a"}
    assert keys[1] == {"t": "int", "v": 2}
    assert keys[2]["t"] == "tuple" and [k["v"] for k in keys[2]["items"]] == [1, "x"]
    assert keys[3] == {"t": "type", "v": f"{__name__}.Point"}
    assert node["entries"][0][1] == {"t": "int", "v": 1}


def test_dict_like_builtins() -> None:
    factory_calls: List[int] = []

    def factory() -> int:
        factory_calls.append(1)
        return 0

    counts: collections.defaultdict[str, int] = collections.defaultdict(factory)
    counts["a"] = 1
    ordered = collections.OrderedDict([("z", 1), ("a", 2)])
    ordered.move_to_end("z")
    cap = capturer()
    assert cap.value(counts)["t"] == "collections.defaultdict"
    assert [e[0]["v"] for e in cap.value(ordered)["entries"]] == ["a", "z"]
    assert cap.value(collections.Counter("aab"))["len"] == 2
    assert factory_calls == [] and dict(counts) == {"a": 1}


def test_ordered_dict_with_foreign_keys_runs_no_key_code() -> None:
    calls: List[str] = []

    class Key:
        def __hash__(self) -> int:
            calls.append("hash")
            return 1

        def __eq__(self, other: object) -> bool:
            calls.append("eq")
            return self is other

    ordered = collections.OrderedDict([(Key(), 1), (Key(), 2), ("z", 3)])
    ordered.move_to_end("z", last=False)  # not seen: reading that order would hash the keys
    calls.clear()
    node = capturer().value(ordered)
    assert calls == []
    assert [entry[1]["v"] for entry in node["entries"]] == [1, 2, 3]


def test_repeated_scalars_keep_their_nodes_and_sizes() -> None:
    cap = capturer()
    values = {"count": 7, "name": "ada", "big": 1 << 300, "flag": True}
    first, second = cap.value(values), cap.value(values)
    assert first == second
    assert [entry[1] for entry in first["entries"]] == [
        {"t": "int", "v": 7},
        {"t": "str", "v": "ada"},
        {"t": "int", "bits": 301, "cut": "length"},
        {"t": "bool", "v": True},
    ]
    assert cap.value(1) == {"t": "int", "v": 1} and cap.value(True) == {"t": "bool", "v": True}
    shallow = capturer(max_depth=0)  # shows the Capturer among the locals by its type only

    def probed() -> List[Dict[str, Any]]:
        count, name, flag = 7, "ada", None  # noqa: F841 - read through the frame
        frame = sys._getframe()
        return [shallow.frames(stack_of(frame, 1), [0]), shallow.frames(stack_of(frame, 1), [0])]

    once, twice = probed()
    assert once == twice and once["size"] == twice["size"]


def test_depth_limit() -> None:
    node = capturer(max_depth=2).value({"a": {"b": {"c": 1}}})
    inner = node["entries"][0][1]
    assert inner["t"] == "dict"
    assert inner["entries"][0][1] == {"t": "dict", "cut": "depth", "len": 1}


def test_objects_by_dict_and_slots() -> None:
    cap = capturer()
    assert cap.value(Point(1, 2)) == {
        "t": f"{__name__}.Point",
        "fields": {"x": {"t": "int", "v": 1}, "y": {"t": "int", "v": 2}},
    }
    slotted = cap.value(Slotted())
    assert slotted["fields"] == {"a": {"t": "int", "v": 1}, "b": {"t": "str", "v": "two"}}


def test_fields_limit() -> None:
    obj = types.SimpleNamespace(**{f"f{i}": i for i in range(50)})
    node = capturer(max_fields=5).value(obj)
    assert list(node["fields"]) == ["f0", "f1", "f2", "f3", "f4"]
    assert node["omitted"] == 45
    assert node["cut"] == "items"


def test_described_values() -> None:
    cap = capturer()
    assert cap.value(Color.RED) == {"t": f"{__name__}.Color", "v": "Color.RED"}
    assert cap.value(datetime.date(2024, 5, 1)) == {"t": "datetime.date", "v": "2024-05-01"}
    assert cap.value(decimal.Decimal("1.50")) == {"t": "decimal.Decimal", "v": "1.50"}
    assert cap.value(test_described_values)["v"] == "test_described_values"
    assert cap.value(json) == {"t": "module", "v": "json"}
    assert cap.value(Point) == {"t": "type", "v": f"{__name__}.Point"}
    assert cap.value(len) == {"t": "builtin_function_or_method", "v": "len"}
    assert cap.value(types.MethodType(Point.__init__, Point(1, 2)))["v"] == "Point.__init__"


def test_str_subclass_shows_its_text() -> None:
    node = capturer().value(Tag("hello"))
    assert node["t"] == f"{__name__}.Tag" and node["v"] == "hello"


def test_exception_shows_args() -> None:
    node = capturer().value(ValueError("bad", 3))
    assert node["t"] == "ValueError"
    assert [item["v"] for item in node["fields"]["args"]["items"]] == ["bad", 3]


def test_c_object_without_state_is_marked() -> None:
    node = capturer().value(iter([1, 2]))
    assert node == {"t": "list_iterator", "fields": {}, "cut": "unsupported"}


def test_cycles_and_shared_references_point_to_the_first_copy() -> None:
    shared = [1, 2]
    data: Dict[str, Any] = {"a": shared, "b": shared}
    data["self"] = data
    node = capturer().value(data)
    entries = node["entries"]
    assert entries[1][1] == {"t": "list", "ref": "/entries/0/1"}
    assert resolve(node, entries[1][1]["ref"])["items"][0]["v"] == 1
    assert entries[2][1] == {"t": "dict", "ref": ""}


def test_reference_inside_a_snapshot_resolves() -> None:
    shared = Point(1, 2)
    first, second = shared, shared  # noqa: F841 - locals read by the capture
    frames = capturer().frames(stack_of(sys._getframe(), 1), [0])
    local_values = frames["frames"][0]["locals"]
    shown = [name for name, node in local_values.items() if "fields" in node]
    assert len(shown) == 1  # the one Point is shown once, the other names refer to it
    for name in ("shared", "first", "second"):
        if name != shown[0]:
            assert resolve(frames, local_values[name]["ref"]) is local_values[shown[0]]


def test_secret_names_are_redacted_everywhere() -> None:
    cap = capturer()
    user = types.SimpleNamespace(name="ada", password="hunter2")
    assert cap.value(user)["fields"]["password"] == {"t": "str", "cut": "redacted"}
    entries = cap.value({"card_pin": 123, "plain": 1})["entries"]  # a numeric secret's name
    assert entries[0] == [{"t": "str", "v": "card_pin"}, {"t": "int", "cut": "redacted"}]
    assert entries[1][1] == {"t": "int", "v": 1}

    def function() -> Dict[str, Any]:
        db_password = "s3cret"  # noqa: F841
        token = ["a"]  # noqa: F841
        fine = 1  # noqa: F841
        return cap.frames(stack_of(sys._getframe(), 1), [0])

    local_values = function()["frames"][0]["locals"]
    assert local_values["db_password"] == {"t": "str", "cut": "redacted"}
    assert local_values["token"] == {"t": "list", "cut": "redacted"}
    assert local_values["fine"] == {"t": "int", "v": 1}
    assert "s3cret" not in json.dumps(function())


def test_secret_values_are_masked() -> None:
    node = capturer().value(["Bearer abcdefghijk", "4111 1111 1111 1111", b"password=x1"])
    assert node["items"][0] == {"t": "str", "v": f"Bearer {MASK}", "cut": "redacted"}
    assert node["items"][1] == {"t": "str", "v": MASK, "cut": "redacted"}
    assert node["items"][2]["v"] == f"password={MASK}"


def test_secret_straddling_the_cut_is_still_masked() -> None:
    text = "x" * 250 + " password=hunter2hunter2"
    node = capturer(max_string=256).value(text)
    assert "hunter2" not in node["v"]
    assert node["cut"] == "redacted" and node["len"] == len(text)


def test_frames_shape_and_locals_only_where_asked() -> None:
    def inner() -> Dict[str, Any]:
        local_int = 5  # noqa: F841
        return capturer().frames(stack_of(sys._getframe(), 3), [0, 2])

    def outer() -> Dict[str, Any]:
        outer_value = "o"  # noqa: F841
        return inner()

    result = outer()
    frames = result["frames"]
    assert len(frames) == 3
    top = frames[0]
    assert top["file"] == __file__
    assert top["function"].endswith("inner")
    assert top["module"] == __name__
    assert top["line"] > 0
    assert top["locals"] == {"local_int": {"t": "int", "v": 5}}
    assert "locals" not in frames[1]
    assert frames[2]["function"].endswith("test_frames_shape_and_locals_only_where_asked")
    assert "result" not in frames[2]["locals"]  # not assigned yet when captured
    assert result["watches"] == []
    assert isinstance(result["size"], int) and result["size"] > 0
    assert "cut" not in result
    json.dumps(result)


def test_frames_use_the_given_line() -> None:
    frame = sys._getframe()
    result = capturer().frames([(frame, 12345)], [])
    assert result["frames"][0]["line"] == 12345


def test_watches_values_and_errors() -> None:
    result = capturer().frames(
        [], [], [("total * 2", 84), ("cart.total", EvaluationError("cart.total is a property"))]
    )
    assert result["watches"] == [
        {"expr": "total * 2", "value": {"t": "int", "v": 84}},
        {"expr": "cart.total", "error": "cart.total is a property"},
    ]


def test_watch_value_that_is_an_exception_is_a_value() -> None:
    result = capturer().frames([], [], [("exc", KeyError("k"))])
    assert result["watches"][0]["value"]["t"] == "KeyError"


def test_stack_of_walks_callers_innermost_first() -> None:
    def a() -> List[Any]:
        return stack_of(sys._getframe(), 2)

    stack = a()
    assert [frame.f_code.co_name for frame, _ in stack] == [
        "a",
        "test_stack_of_walks_callers_innermost_first",
    ]
    assert stack[0][1] == a.__code__.co_firstlineno + 1
    assert len(stack_of(sys._getframe(), 1000)) < 1000


def test_locals_of_a_module_frame_skip_dunders_and_are_capped() -> None:
    namespace: Dict[str, Any] = {f"g{i}": i for i in range(300)}
    namespace["__name__"] = "fake_module"
    exec(compile("import sys\nframe = sys._getframe()", "<module>", "exec"), namespace)
    result = capturer(max_items=50).frames([(namespace["frame"], 1)], [0])
    frame = result["frames"][0]
    assert frame["module"] == "fake_module"
    assert len(frame["locals"]) == 50
    assert frame["locals_omitted"] > 250
    assert not any(name.startswith("__") for name in frame["locals"])


def test_budget_prunes_from_the_deepest_level_up() -> None:
    data = {f"k{i}": {"inner": ["x" * 200, {"deep": "y" * 200}]} for i in range(100)}

    def function() -> Dict[str, Any]:
        small = 1  # noqa: F841
        big = data  # noqa: F841
        return capturer(max_bytes=8000).frames(stack_of(sys._getframe(), 1), [0])

    result = function()
    encoded = json.dumps(result, separators=(",", ":"))
    assert result["cut"] == "budget"
    assert len(encoded) <= 8000 * 1.1
    local_values = result["frames"][0]["locals"]
    assert local_values["small"] == {"t": "int", "v": 1}
    big = local_values["big"]
    assert big["t"] == "dict" and "entries" in big  # the local itself survives
    assert "budget" in cuts_in(big)
    # The first entries keep more than the last ones: the last are pruned first.
    first, last = big["entries"][0][1], big["entries"][-1][1]
    assert first.get("cut") != "budget" or last.get("cut") == "budget"


def test_budget_never_drops_the_stack() -> None:
    def function() -> Dict[str, Any]:
        many = {f"k{i}": "v" * 100 for i in range(100)}  # noqa: F841
        more = list(range(100))  # noqa: F841
        return capturer(max_bytes=300).frames(stack_of(sys._getframe(), 5), [0, 1])

    result = function()
    assert len(result["frames"]) == 5
    assert result["cut"] == "budget"
    assert all("file" in frame and "line" in frame for frame in result["frames"])


def test_value_with_budget() -> None:
    node = capturer(max_bytes=500).value([["x" * 100] * 10 for _ in range(10)])
    assert len(json.dumps(node)) <= 800
    assert "budget" in cuts_in(node)


def test_every_cut_is_a_protocol_cut() -> None:
    cap = capturer(max_items=2, max_depth=1, max_string=3, max_bytes=400)
    data = {"password": 1, "a": [[1], [2], [3]], "s": "long string", "it": iter(()),
            "t": "Bearer abcdefgh"}  # fmt: skip
    assert set(cuts_in(cap.value(data))) <= set(CUTS)


def test_safe_type_name() -> None:
    assert safe_type_name(Point(1, 2)) == f"{__name__}.Point"
    assert safe_type_name(3) == "int"
    assert safe_type_name(collections.OrderedDict()) == "collections.OrderedDict"


def test_one_capturer_serves_many_threads() -> None:
    import threading

    cap = capturer()
    errors: List[BaseException] = []
    data = {"a": [1, 2, {"b": "c"}], "p": Point(1, 2)}
    expected = cap.value(data)

    def work() -> None:
        try:
            for _ in range(200):
                assert cap.value(data) == expected
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_reference_to_a_watched_value_resolves() -> None:
    """Before: the pointer was ``/watches/0/value/None``, which no client could follow."""
    items = [1, 2]
    shared = items  # noqa: F841 - a local that is the watched value again
    result = capturer().frames(stack_of(sys._getframe(), 1), [0], [("items", items)])
    ref = result["frames"][0]["locals"]["shared"]["ref"]
    assert ref == "/watches/0/value"
    assert resolve(result, ref) is result["watches"][0]["value"]
