"""The generated ``Template.render`` against what the loop it replaced rendered.

Each line and its errors were recorded with the loop-based ``render`` (commit 88db6cb) and
are pinned here: literals, short ints and bools, a card-sized int, specs and conversions, a
name that is not defined, a builtin failure, values masked by their format (tainted by a spec
or a slice), a line cut at ``MAX_LINE`` on a literal and on placeholders, escaped braces.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional

import pytest
from test_expressions import GLOBALS, REDACTOR, scope

from peephole.agent.safe.expressions import compile_template

SHOWN = {
    "": "",
    "plain text only": "plain text only",
    "{count}": "3",
    "n={count} ok={flag} big={big} neg={-count} f={ratio} r={count!r} s={name!s} pad={name:>8}": (
        "n=3 ok=True big=[redacted] neg=-3 f=0.5 r=3 s=alice pad=   alice"
    ),
    "{missing} then {count}": "{!error: name 'missing' is not defined} then 3",
    "{count / zero}": "{!error: ZeroDivisionError: division by zero}",
    "{note} and {note!r} and {note:>40} and {note[4:]}": (
        "key [redacted] and 'key [redacted]' and [redacted] and [redacted]"
    ),
    "{{literal}} {count}}}": "{literal} 3}",
}
ERRORS = {
    "{missing} then {count}": ["{missing}: name 'missing' is not defined"],
    "{count / zero}": ["{count / zero}: ZeroDivisionError: division by zero"],
}
# Lines too long to spell out: (digest, length) as the loop rendered them.
LONG = {
    "x" * 1500 + "{count}": ("13cf177e32e9342f", 1501),
    "{name}" * 400: ("7234636b11e7525c", 2000),
}


def _locals() -> Dict[str, Any]:
    values = dict(scope())
    values.update(
        zero=0,
        big=4111111111111111,
        flag=True,
        ratio=0.5,
        name="alice",
        note="key AKIAIOSFODNN7EXAMPLE",
    )
    return values


@pytest.mark.parametrize("source", [*SHOWN, *LONG])
def test_render_is_what_the_loop_rendered(source: str) -> None:
    line, errors = compile_template(source, REDACTOR).render(_locals(), GLOBALS)
    expected_errors: List[str] = ERRORS.get(source, [])
    assert errors == expected_errors
    shown: Optional[str] = SHOWN.get(source)
    if shown is not None:
        assert line == shown
    else:
        assert (hashlib.sha256(line.encode()).hexdigest()[:16], len(line)) == LONG[source]


def test_render_keeps_no_state_between_lines() -> None:
    """Taint and errors are per line: a failing or masked line leaves the next one clean."""
    template = compile_template("{note} {missing} {count}", REDACTOR)
    first = template.render(_locals(), GLOBALS)
    second = template.render({**_locals(), "note": "plain", "missing": 1}, GLOBALS)
    assert first[0] == "key [redacted] {!error: name 'missing' is not defined} 3"
    assert second == ("plain 1 3", [])
