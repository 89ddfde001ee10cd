"""Peephole probes -> the requests a Sidekick agent takes, per runtime."""

from __future__ import annotations

from typing import Any

import pytest

from peephole import protocol
from peephole.server.sidekick import requests
from peephole.server.sidekick.identity import JAVA, NODE, PYTHON
from sidekick.fixture_frames import frames


def spec(**fields: Any) -> protocol.ProbeSpec:
    values: dict[str, Any] = {"id": "p1", "kind": "tracepoint", "file": "shop.py", "line": 13}
    values.update(fields)
    return protocol.ProbeSpec.from_dict(values)


def test_python_file_names_are_relative_with_an_empty_ref() -> None:
    assert requests.file_name("shop.py", PYTHON) == "shop.py?ref="
    assert requests.file_name("/pkg/mod.py", PYTHON) == "pkg/mod.py?ref="
    with pytest.raises(requests.Untranslatable, match=r"\.py files"):
        requests.file_name("app.js", PYTHON)


def test_node_file_names_start_with_a_slash() -> None:
    assert requests.file_name("app.js", NODE) == "/app.js"
    assert requests.file_name("/src/app.js", NODE) == "/src/app.js"
    assert requests.file_name("com/acme/Shop.java", JAVA) == "com/acme/Shop.java"


@pytest.mark.parametrize("runtime", [NODE, PYTHON])
def test_a_put_has_every_field_the_recorded_broker_sent(runtime: str) -> None:
    fixture = "node" if runtime == NODE else "python"
    recorded = [f for name, f in frames("broker", "PutTracePointRequest") if fixture in name]
    assert recorded, "no recorded PutTracePointRequest"
    file = "app.js" if runtime == NODE else "shop.py"
    ours = requests.put(spec(file=file), runtime)
    assert set(recorded[0]) <= set(ours)
    assert ours["tracePointId"] == "p1" and ours["lineNo"] == 13
    # no expiry on the agent: the server enforces expiry and hit limits
    assert ours["expireSecs"] == ours["expireCount"] == -1 and ours["tags"] == ["peephole"]
    assert ours["type"] == "Request" and ours["client"] == requests.CLIENT


def test_a_logpoint_put_matches_the_recorded_one() -> None:
    recorded = frames("broker", "PutLogPointRequest")[0][1]
    probe = spec(kind="logpoint", template="cart {cart.id} user={user.name}", level="warning")
    ours = requests.put(probe, PYTHON)
    assert set(recorded) <= set(ours)
    assert ours["name"] == "PutLogPointRequest" and ours["logPointId"] == "p1"
    # {{&...}}: both agents' Mustache would HTML-escape a {{...}} value (&lt; in a log line)
    assert ours["logExpression"] == "cart {{&cart.id}} user={{&user.name}}"
    assert ours["logLevel"] == "WARNING"


def test_update_and_remove() -> None:
    assert requests.update(spec(), NODE)["name"] == "UpdateTracePointRequest"
    removal = requests.remove("p1", "logpoint")
    assert removal["name"] == "RemoveLogPointRequest" and removal["logPointId"] == "p1"


@pytest.mark.parametrize(
    "template, mustache",
    [
        ("total={total}", "total={{&total}}"),
        ("{ a.b }!", "{{&a.b}}!"),
        ("set {{x}} = {x}", "set {x} = {{&x}}"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_templates(template: str, mustache: str) -> None:
    assert requests.template(template) == mustache


@pytest.mark.parametrize(
    "template", ["{total:.2f}", "{len(items)}", "{items[0]}", "{x!r}", "{{{x}}}", "{open"]
)
def test_templates_beyond_names_are_refused(template: str) -> None:
    with pytest.raises(requests.Untranslatable):
        requests.template(template)


@pytest.mark.parametrize(
    "condition, node, python",
    [
        ("user.vip == True", "user.vip === true", "user.vip == true"),
        ("not (a == 1 or b)", "!(a === 1 || b)", None),
        ("total > 10 and user.name != 'bob'", 'total > 10 && user.name !== "bob"',
         'total > 10 AND user.name != "bob"'),
        ("a == None or (b < -1 and c >= 2.5)", "a === null || (b < -1 && c >= 2.5)",
         "a == null OR (b < -1 AND c >= 2.5)"),
    ],
)  # fmt: skip
def test_conditions(condition: str, node: str, python: str | None) -> None:
    assert requests.condition(condition, NODE) == node
    if python is not None:
        assert requests.condition(condition, PYTHON) == python
        assert requests.condition(condition, JAVA) == python


@pytest.mark.parametrize(
    "condition, runtimes",
    [
        ("len(items) > 2", (NODE, PYTHON)),
        ("user.vip", (PYTHON,)),  # the grammar takes comparisons only
        ("not user.vip", (PYTHON,)),
        ("1 < x < 3", (NODE, PYTHON)),
        ("x in (1, 2)", (NODE, PYTHON)),
        ("x == 'a\"b'", (NODE, PYTHON)),
        ("x ==", (NODE, PYTHON)),
    ],
)
def test_conditions_that_cannot_be_translated(condition: str, runtimes: tuple[str, ...]) -> None:
    for runtime in runtimes:
        with pytest.raises(requests.Untranslatable) as caught:
            requests.condition(condition, runtime)
        assert str(caught.value)


def test_node_takes_a_negation() -> None:
    assert requests.condition("not user.vip", NODE) == "!user.vip"


def test_watches_are_refused() -> None:
    with pytest.raises(requests.Untranslatable, match="watch"):
        requests.put(spec(watches=["cart"]), NODE)
