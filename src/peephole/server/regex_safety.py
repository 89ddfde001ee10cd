"""Which redaction patterns may reach agents: only those Python's ``re`` runs in bounded time.

Agents match redaction patterns against captured strings inside the application's process,
with Python's backtracking ``re`` (a linear-time engine would be a dependency of every
agent). A pattern such as ``(a+)+$`` takes exponential time on ``"aaaa...b"``, so an admin's
typo could stall every request of a service. The server refuses, before storing a policy,
the constructs that make backtracking blow up:

- a repeat inside a repeat (``(a+)+``, ``(a*b?)*``): exponential;
- an alternation inside a repeat (``(a|ab)*``): exponential when branches overlap;
- back-references, look-arounds and conditionals: not regular at all;
- more than ``MAX_UNBOUNDED`` unbounded repeats (``+``, ``*``, ``{n,}``): each one can
  multiply the work by the length of the text.

Counted repeats are fine (``[0-9]{16}``), as are the usual secret formats
(``AKIA[0-9A-Z]{16}``, ``Bearer\\s+[A-Za-z0-9._~+/-]+``).
"""

from __future__ import annotations

import re
from typing import Any

try:
    from re import _constants as sre  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_constants as sre
    import sre_parse

__all__ = ["UnsafePattern", "check"]

MAX_UNBOUNDED = 3
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))
NOT_REGULAR = {
    sre.GROUPREF: "back-references",
    sre.GROUPREF_EXISTS: "conditionals",
    sre.ASSERT: "look-arounds",
    sre.ASSERT_NOT: "look-arounds",
}


class UnsafePattern(ValueError):
    """A pattern that compiles but could backtrack for a very long time."""


def check(pattern: str) -> None:
    """Raise :class:`UnsafePattern` (or ``re.error``) unless ``pattern`` is safe to run."""
    re.compile(pattern)
    unbounded = _walk(sre_parse.parse(pattern), inside_repeat=False)
    if unbounded > MAX_UNBOUNDED:
        raise UnsafePattern(
            f"more than {MAX_UNBOUNDED} unbounded repeats (+, *, {{n,}}): use counted ones"
        )


def _walk(items: Any, inside_repeat: bool) -> int:
    """Check a parsed pattern; return how many unbounded repeats it holds."""
    unbounded = 0
    for op, value in items:
        if op in NOT_REGULAR:
            raise UnsafePattern(f"{NOT_REGULAR[op]} are not allowed")
        if op in REPEATS:
            _low, high, body = value
            many = high == sre.MAXREPEAT or high > 1
            if inside_repeat and many:
                raise UnsafePattern("a repeat inside a repeat can backtrack exponentially")
            unbounded += (high == sre.MAXREPEAT) + _walk(body, inside_repeat or many)
        elif op == sre.BRANCH:
            if inside_repeat:
                raise UnsafePattern("an alternation inside a repeat can backtrack exponentially")
            unbounded += sum(_walk(branch, inside_repeat) for branch in value[1])
        elif op == sre.SUBPATTERN:
            unbounded += _walk(value[-1], inside_repeat)
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            unbounded += _walk(value, inside_repeat)
    return unbounded
