"""The hit path's shortcuts give what the long way gave: the generated ``evaluate``, the
template's inline repr of short ints and bools, and the event a logpoint hit builds."""

from __future__ import annotations

import re
import threading
from typing import Any, Dict, List, Mapping, Tuple

import pytest
from targets import shop

from conftest import SHOP_PATH, Collector, logpoint, shop_line
from peephole import protocol
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.safe import expressions
from peephole.agent.safe.expressions import (
    EvaluationError,
    Expression,
    compile_expression,
    compile_template,
)
from peephole.agent.safe.redaction import Redactor

REDACTOR = Redactor.from_policy(AgentConfig(), None)
TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
LOCALS: Dict[str, Any] = {
    "count": 3,
    "items": [1, 2, 3],
    "name": "checkout",
    "text": TOKEN,
    "big": 4111111111111111,
    "flag": True,
    "ratio": 0.5,
    "nothing": None,
}
SOURCES = [
    "count < 0",
    "count > 0",
    "items[1] + count",
    "items[10]",
    "count / 0",
    "'a' < 1",
    "name.upper",
    "len(text) > 3",
    "text[:4]",
    "text == 'x'",
    "text",
    "big + 1",
    "missing_name",
    "nothing",
    "flag and count",
    "sum(items) * ratio",
]


def _old_evaluate(expression: Expression, f_locals: Mapping[str, Any]) -> object:
    """What ``Expression.evaluate`` did before it was generated: the reference."""
    S = [expressions.MAX_WORK, False, expression.redactor, expressions.MAX_TAINT_SCANS]
    try:
        value = expression._function(f_locals, {}, S)
    except EvaluationError as exc:
        if S[1]:
            raise EvaluationError(expressions.TAINTED) from None
        raise exc from None
    except Exception as exc:
        raise EvaluationError(
            expressions.TAINTED if S[1] else expressions._describe_error(exc)
        ) from None
    if S[1]:
        raise EvaluationError(expressions.TAINTED)
    return value


def _outcome(evaluate: Any, f_locals: Mapping[str, Any]) -> Tuple[str, object]:
    try:
        return "value", evaluate(f_locals)
    except EvaluationError as exc:
        return "error", (str(exc), exc.__cause__, exc.__suppress_context__)


@pytest.mark.parametrize("source", SOURCES)
def test_the_generated_evaluate_gives_what_the_wrapper_gave(source: str) -> None:
    expression = compile_expression(source, REDACTOR)
    new = _outcome(lambda f_locals: expression.evaluate(f_locals, {}), LOCALS)
    old = _outcome(lambda f_locals: _old_evaluate(expression, f_locals), LOCALS)
    assert new == old


def test_the_generated_evaluate_hides_a_tainted_answer() -> None:
    expression = compile_expression("text[:4] == 'ghp_'", REDACTOR)
    with pytest.raises(EvaluationError, match=re.escape(expressions.TAINTED)):
        expression.evaluate(LOCALS, {})


def test_each_evaluation_has_its_own_budget() -> None:
    """The state list is made per call: a failed evaluation leaves nothing for the next."""
    expression = compile_expression("text[:4]", REDACTOR)
    clean = compile_expression("count + 1", REDACTOR)
    with pytest.raises(EvaluationError):
        expression.evaluate(LOCALS, {})
    assert clean.evaluate(LOCALS, {}) == 4


VALUES: List[Any] = [0, 7, -12, 10**12 - 1, 10**12, -(10**12), 4111111111111111, True, False]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("field", ["{v}", "{v!s}", "{v!r}", "{v:>8}", "{v!r:>20}"])
def test_a_placeholder_renders_as_render_writes_it(value: Any, field: str) -> None:
    template = compile_template(f"x={field}", REDACTOR)
    (_, part) = template.parts
    assert isinstance(part, expressions._Field)
    S = [expressions.MAX_WORK, False, REDACTOR, expressions.MAX_TAINT_SCANS]
    try:
        expected = "x=" + expressions._render(value, part.conversion, part.spec, S)
    except EvaluationError as exc:
        expected = f"x={{!error: {exc}}}"
    line, _ = template.render({"v": value}, {})
    assert line == REDACTOR.mask(expected)


def test_a_logpoint_event_has_the_keys_new_event_gave(agent: Agent, collector: Collector) -> None:
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "price={price}"))

    def work() -> None:
        threading.current_thread().name = "renamed-worker"  # read at the hit, not cached
        shop.Cart("ann").add(2.5)

    thread = threading.Thread(target=work, name="worker-1")
    thread.start()
    thread.join()
    agent.flush()
    (event,) = collector.of("log")
    assert list(event)[:11] == [
        "id",
        "type",
        "time",
        "probe_id",
        "probe_version",
        "file",
        "line",
        "level",
        "message",
        "errors",
        "thread",
    ]
    assert re.fullmatch(r"[0-9a-f]{32}", event["id"])
    assert event["type"] == protocol.LOG
    assert event["thread"] == "renamed-worker"
    assert "trace_id" not in event and "span_id" not in event


def test_event_ids_differ(agent: Agent, collector: Collector) -> None:
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "price={price}"))
    for price in range(5):
        shop.Cart("ann").add(float(price))
    agent.flush()
    ids = [event["id"] for event in collector.of("log")]
    assert len(ids) == len(set(ids)) == 5
