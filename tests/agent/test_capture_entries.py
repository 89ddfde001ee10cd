"""A dict key remembers the value it was last shown with and that entry: every capture still
shows the value the dict holds now, whatever changed, and never compares a foreign value."""

from __future__ import annotations

import json
from typing import Any, Dict

from peephole.agent.safe.capture import Capturer
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import Limits


def _fresh(value: Any) -> Dict[str, Any]:
    """The node a Capturer that has seen nothing makes of ``value``."""
    return Capturer(Limits(), Redactor()).value(value)


class _LoudInt(int):
    """An int whose comparison and hash are the application's code: never to be run."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("the capture compared an application's int")

    def __hash__(self) -> int:
        raise AssertionError("the capture hashed an application's int")


def test_every_value_under_a_remembered_key_is_shown_as_it_is_now() -> None:
    capturer = Capturer(Limits(), Redactor())
    values: list[Any] = [
        1,
        1,
        int("1000"),  # an equal int, another object
        2,
        True,  # equal to 1, not an int
        None,
        1.0,
        "1",
        "x",
        "x",
        "ghp_" + "a" * 36,  # a token: masked
        4111111111111111,  # a card number: masked
        12,
        _LoudInt(12),
        [1, 2],
        b"x",
        "y" * 300,  # longer than the string limit
    ]
    for value in values:
        mapping = {"price": value, "n": 7, "note": None}  # None: a key's first value too
        assert json.dumps(capturer.value(mapping)) == json.dumps(_fresh(mapping)), value


def test_a_secret_keys_values_stay_hidden_whatever_came_before() -> None:
    capturer = Capturer(Limits(), Redactor())
    for value in ["a", "a", 5, "b", "b", 5]:
        entry = capturer.value({"password": value})["entries"][0]
        assert entry == _fresh({"password": value})["entries"][0]
        if type(value) is str:
            assert entry[1] == {"t": "str", "cut": "redacted"}
    for value in [1234, 1234, 1235]:  # a pin is a number: hidden too
        assert capturer.value({"pin": value})["entries"][0][1]["cut"] == "redacted"


def test_an_entry_shown_in_a_plain_dict_is_hidden_inside_a_secret_collection() -> None:
    capturer = Capturer(Limits(), Redactor())
    headers = {"accept": "text/html", "n": 3}
    for _ in range(3):
        shown = capturer.value(headers)
    assert shown["entries"][0][1] == {"t": "str", "v": "text/html"}
    capturer.redactor.secret_ids = frozenset({id(headers)})  # as the process environment
    hidden = capturer.value(headers)
    assert hidden["entries"] == [
        [{"t": "str", "v": "accept"}, {"t": "str", "cut": "redacted"}],
        [{"t": "str", "v": "n"}, {"t": "int", "v": 3}],
    ]
    capturer.redactor.secret_ids = frozenset()
    assert capturer.value(headers) == shown


def test_a_long_key_is_shown_but_not_kept() -> None:
    capturer = Capturer(Limits(), Redactor())
    key = "k" * 100
    for value in [1, 1, 2]:
        assert capturer.value({key: value})["entries"][0] == [
            {"t": "str", "v": key},
            {"t": "int", "v": value},
        ]
    assert key not in capturer.keys
