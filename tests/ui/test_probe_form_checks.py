"""The add and edit forms check expressions and templates with the API's own checker
(``protocol.expression_problem`` / ``template_problem``): what the API takes the form takes,
what it refuses the form refuses with the same message, and the caret under the same column."""

from __future__ import annotations

from typing import Optional

import pytest

from peephole import protocol
from peephole.server.ui.probes import ProbeForm

pytestmark = pytest.mark.server


def _caret_column(problem: str) -> int:
    """The 1-based column the API's caret points at (its third line, indented 4)."""
    return len(problem.splitlines()[2]) - 4


@pytest.mark.parametrize(
    "form",
    [
        ProbeForm(condition=" user.id == 1"),
        ProbeForm(watches="  cart.total\n\tlen(cart.items)"),
        ProbeForm(kind=protocol.LOGPOINT, template='looked up {d["}"]} and {d["{"]!r}'),
        ProbeForm(kind=protocol.LOGPOINT, template="{ {'a': 1}['a'] } of {x:>10}"),
    ],
)
def test_the_form_takes_what_the_api_takes(form: ProbeForm) -> None:
    assert protocol.expression_problem(form.condition) is None or not form.condition
    assert protocol.template_problem(form.template) is None or form.kind != protocol.LOGPOINT
    assert form.check() == {}


@pytest.mark.parametrize(
    ("field", "form", "api_problem"),
    [
        ("condition", ProbeForm(condition="  a +* b"), protocol.expression_problem("  a +* b")),
        ("watches", ProbeForm(watches="ok\nx y"), protocol.expression_problem("x y")),
        (
            "template",
            ProbeForm(kind=protocol.LOGPOINT, template="total } of {cart"),
            protocol.template_problem("total } of {cart"),
        ),
        (
            "template",
            ProbeForm(kind=protocol.LOGPOINT, template="a {x} b {y +}"),
            protocol.template_problem("a {x} b {y +}"),
        ),
    ],
)
def test_the_form_refuses_what_the_api_refuses_with_its_message_and_column(
    field: str, form: ProbeForm, api_problem: Optional[str]
) -> None:
    assert api_problem is not None
    errors = form.check()
    assert list(errors) == [field]
    found = errors[field]
    assert found.message == api_problem.splitlines()[0]
    assert found.text is not None and found.column is not None
    assert found.column + 1 == _caret_column(api_problem)  # the form's column is 0-based


def test_the_caret_stays_under_its_character_when_the_text_shows_escapes() -> None:
    found = ProbeForm(condition="'\u202e' +* b").check()["condition"]
    assert found.text == "'\\u202e' +* b"
    assert found.text is not None and found.column is not None
    assert found.text[found.column] == "*"
