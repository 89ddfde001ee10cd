"""What one expression may cost, and what it may touch: look-ups and membership never compare
a stored key of the application's, every operation whose cost grows with an operand is
refused before it runs, the whole evaluation has a budget, and compiling never warns."""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap
import time
import tracemalloc
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

import pytest
from test_expressions import RAN, _nothing_ran  # noqa: F401  (the autouse fixture)

from coverage_pause import uncovered
from peephole.agent.safe.expressions import (
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    MAX_INT_TEXT_BITS,
    MAX_KEYS,
    MAX_LINE,
    MAX_ROUND_DIGITS,
    MAX_TAINT_SCANS,
    MAX_WORK,
    EvaluationError,
    Expression,
    ExpressionError,
    State,
    compile_expression,
    compile_template,
)
from peephole.agent.safe.redaction import MASK, Redactor

REDACTOR = Redactor()


def evaluate(source: str, f_locals: Optional[Mapping[str, Any]] = None) -> Any:
    return compile_expression(source, REDACTOR).evaluate(f_locals or {}, {})


def peak_bytes(run: Callable[[], object]) -> int:
    """The most memory ``run`` held at once (whatever it raised): a result it was not meant
    to make shows there, however loaded the machine."""
    tracemalloc.start()
    try:
        run()
    except EvaluationError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# --- look-ups never compare a stored key of the application's (9.7) ------------------------


class HashedLike:
    """Hashed like the value it wraps (an ORM model hashed by primary key, say); its
    ``__eq__`` is application code and records that it ran."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        RAN.append(f"__eq__ of a key hashed like {self.value!r}")
        return False


class Plain:
    """No comparison of its own: object's identity ``__eq__`` is C code."""


@pytest.mark.parametrize(
    ("source", "f_locals"),
    [
        ("d['name']", {"d": {HashedLike("name"): 1, "other": 2}}),
        ("d['other']", {"d": {HashedLike("name"): 1, "other": 2}}),
        ("'name' in d", {"d": {HashedLike("name"): 1}}),
        ("'name' not in d", {"d": {HashedLike("name"): 1}}),
        ("1 in d", {"d": {HashedLike(1): "x"}}),
        ("d[1]", {"d": {HashedLike(1): "x"}}),
        ("'name' in s", {"s": {HashedLike("name"), "a"}}),
        ("1 in s", {"s": frozenset({HashedLike(1)})}),
        ("d[('a', 1)]", {"d": {(HashedLike("a"), 1): "x"}}),
        ("('a', 1) in s", {"s": {(HashedLike("a"), 1)}}),
        ("1 in xs", {"xs": [HashedLike(1)]}),
        ("'a' in xs", {"xs": ("b", HashedLike("a"))}),
    ],
)
def test_lookups_never_run_a_stored_keys_eq(source: str, f_locals: Dict[str, Any]) -> None:
    with pytest.raises(EvaluationError, match=r"would run|would compare"):
        evaluate(source, f_locals)


def test_lookups_with_builtin_and_identity_keys_work() -> None:
    plain = Plain()
    f_locals = {"d": {"name": 1, 2: "two", ("a", 1): 3, plain: 4, None: 5},
                "s": {"name", 1, ("a", 1), plain}}  # fmt: skip
    assert evaluate("d['name'] + d[('a', 1)]", f_locals) == 4
    assert evaluate("d[2]", f_locals) == "two"
    assert evaluate("'name' in d and 1 in s and ('a', 1) in s", f_locals) is True
    assert evaluate("'nope' in s", f_locals) is False


def test_lookups_check_a_bounded_number_of_keys() -> None:
    big = dict.fromkeys(range(MAX_KEYS + 1), 1)
    with pytest.raises(EvaluationError, match=f"at most {MAX_KEYS} keys"):
        evaluate("d[1]", {"d": big})
    del big[0]
    assert evaluate("d[1]", {"d": big}) == 1


def test_refused_lookup_says_which_key_type() -> None:
    with pytest.raises(EvaluationError) as caught:
        evaluate("d['name']", {"d": {HashedLike("name"): 1}})
    assert "HashedLike" in str(caught.value)


# --- every operation is bounded before it runs (9.8) ----------------------------------------


@pytest.mark.timeout(20)  # catches a hang ('ab' * 10**9 made, say)
@pytest.mark.parametrize(
    ("source", "bound"),
    [
        ("round(5, -10**5)", f"{MAX_ROUND_DIGITS} digits"),
        ("round(5.5, 10**5)", f"{MAX_ROUND_DIGITS} digits"),
        ("round(big, -10**9)", f"{MAX_ROUND_DIGITS} digits"),
        ("(2**99999) * (2**99999)", f"{MAX_INT_BITS} bits"),
        ("big * big", f"{MAX_INT_BITS} bits"),
        ("(2**60000) << 60000", f"{MAX_INT_BITS} bits"),
        ("huge // 3", f"{MAX_INT_BITS} bits"),
        ("huge % 7", f"{MAX_INT_BITS} bits"),
        ("huge * 2", f"{MAX_INT_BITS} bits"),
        ("str(huge)", f"{MAX_INT_TEXT_BITS} bits"),
        ("repr(huge)", f"{MAX_INT_TEXT_BITS} bits"),
        ("f'{huge:,}'", f"{MAX_INT_TEXT_BITS} bits"),
        ("int(digits)", "4300 characters"),
        ("repr(long_text)", "100000 characters"),
        ("'ab' * 10**9", "100000 items"),
        ("[1] * 10**9", "100000 items"),
    ],
)
@uncovered  # the memory it measures would count coverage's records too
def test_costly_operations_are_refused_before_they_run(source: str, bound: str) -> None:
    """Refused before the operation made its result: every result here would take 15 KB
    or more ((2**60000) << 60000 the least), and a refusal takes under 6 KB."""
    f_locals = {"big": 2**99_999, "huge": 1 << 400_000, "digits": "7" * 100_000,
                "long_text": "x" * 1_000_000}  # fmt: skip
    expression = compile_expression(source, REDACTOR)
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate(f_locals, {})
    assert bound in str(caught.value)
    assert peak_bytes(lambda: expression.evaluate(f_locals, {})) < 12_000


def test_a_huge_int_without_a_spec_is_shown_by_its_size() -> None:
    assert evaluate("f'{huge}'", {"huge": 1 << 400_000}) == "<int of 400001 bits>"


def test_int_to_text_is_bounded_whatever_the_hosts_digit_limit() -> None:
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("this Python has no int digit limit to lift")  # pragma: no cover
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # what a host may do; str() of a huge int is then quadratic
    try:
        with pytest.raises(EvaluationError, match=f"{MAX_INT_TEXT_BITS} bits"):
            evaluate("str(huge)", {"huge": 1 << 400_000})
    finally:
        sys.set_int_max_str_digits(previous)


@pytest.mark.parametrize(
    "spec", [">1000000000", "<100000", "^5000", "=+5000", "x>2000", ".1000000000f",
             ".100000", ",.5000f", "05000", "05000.2f"],
)  # fmt: skip
def test_format_width_and_precision_are_refused_when_saved(spec: str) -> None:
    with pytest.raises(ExpressionError, match=f"{MAX_FORMAT_WIDTH}"):
        compile_template(f"{{s:{spec}}}", REDACTOR)
    with pytest.raises(ExpressionError, match=f"{MAX_FORMAT_WIDTH}"):
        compile_expression(f"f'{{s:{spec}}}'", REDACTOR)


def test_format_specs_within_bounds_still_work() -> None:
    template = compile_template("{s:>8}|{x:.3f}|{n:,}|{n:08x}|{s:*^9}|{x:.2%}", REDACTOR)
    line, errors = template.render({"s": "abc", "x": 1.23456, "n": 1234567}, {})
    assert errors == []
    assert line == "     abc|1.235|1,234,567|0012d687|***abc***|123.46%"


@uncovered  # the memory it measures would count coverage's records too
def test_huge_text_is_cut_before_it_is_formatted() -> None:
    """Formatted whole, the 50 MB text would be copied (twice for ``!r``); cut first, the
    render holds about 10 KB."""
    template = compile_template("{s:>10}{s!r:>10}", REDACTOR)
    f_locals = {"s": "y" * 50_000_000}
    line, errors = template.render(f_locals, {})
    assert errors == [] and line.startswith("yyyy") and len(line) < 3000
    assert peak_bytes(lambda: template.render(f_locals, {})) < 1_000_000


@pytest.mark.parametrize(
    "source", ["s.center(10**9)", "s.ljust(10**9)", "s.rjust(10**9)", "s.zfill(10**9)",
               "s.expandtabs(10**9)", "range(10**12)", "bin(2**10**6)", "hex(x)", "oct(x)"],
)  # fmt: skip
def test_methods_and_other_builtins_are_refused_when_saved(source: str) -> None:
    with pytest.raises(ExpressionError, match="does not call"):
        compile_expression(source, REDACTOR)


def builtin_calls(name: str, run: Callable[[], object]) -> int:
    """How many times ``run`` called the builtin ``name`` (whatever it raised)."""
    wanted = getattr(builtins, name)
    calls = [0]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call" and arg is wanted:
            calls[0] += 1

    sys.setprofile(profile)
    try:
        run()
    except EvaluationError:
        pass
    finally:
        sys.setprofile(None)
    return calls[0]


def test_the_evaluation_budget_is_checked_during_evaluation() -> None:
    """Each operation is within its own bound, together they are not: the expression stops
    at the operation that goes over the budget, not after it has done everything."""
    items = list(range(10_000))
    expression = compile_expression(" + ".join(["max(xs)"] * 40), REDACTOR)
    with pytest.raises(EvaluationError, match=f"evaluation budget of {MAX_WORK}"):
        expression.evaluate({"xs": items}, {})
    ran = builtin_calls("max", lambda: expression.evaluate({"xs": items}, {}))
    assert 0 < ran < 40  # stopped early, not after all 40
    assert evaluate("max(xs) - min(xs[:5000])", {"xs": items}) == 9_999


def _as_many_as_fit(term: str) -> Expression:
    """``term and term and ...``, as many times as an expression may hold."""
    for count in range(40, 0, -1):
        try:
            return compile_expression(" and ".join([f"({term})"] * count), REDACTOR)
        except ExpressionError:
            continue
    raise AssertionError(term)  # pragma: no cover


COSTLY_LOCALS = {
    "xs": list(range(10_000)), "texts": [str(i) for i in range(10_000)],
    "floats": [float(i) for i in range(5_000)], "objs": [Plain() for _ in range(2_000)],
    "classes": (str,) * 9_000, "d": {**{str(i): i for i in range(MAX_KEYS - 1)}, "k": 1},
}  # fmt: skip
COSTLY_TERMS = [
    "max(xs)", "xs[:5000] == xs[:5000]", "sum(xs)", "5000 in xs", "'5' not in xs",
    "texts[:4000] == texts[:4000]", "floats == floats", "objs == objs", "any(objs)",
    "isinstance(1, classes)", "xs[1:]", "d['k']", "'5' in texts",
]  # fmt: skip


@pytest.mark.parametrize("term", COSTLY_TERMS)
def test_each_costly_term_charges_the_budget_or_is_refused(term: str) -> None:
    """What keeps many of them cheap together: each one spends the evaluation budget."""
    S: State = [MAX_WORK, False, REDACTOR, MAX_TAINT_SCANS]
    try:
        compile_expression(term, REDACTOR)._function(COSTLY_LOCALS, {}, S)
    except EvaluationError as exc:
        assert "would run" in str(exc)
        return
    assert S[0] < MAX_WORK


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "term",
    COSTLY_TERMS,
)
@uncovered  # its time bound would measure coverage's tracer too
def test_the_costliest_expressions_stop_within_milliseconds(term: str) -> None:
    """As many costly terms as an expression may hold: each within its own bound, together
    stopped by the budget (or refused) a few milliseconds in. The bound is the CPU time of
    this thread (a loaded machine makes it wait, not work more), 30 times the costliest on a
    quiet machine (15 ms): it only catches a blow-up, a term costing far more than it is
    charged (the test above pins that each term is charged at all)."""
    expression = _as_many_as_fit(term)
    started = time.thread_time()
    try:
        expression.evaluate(COSTLY_LOCALS, {})
    except EvaluationError:
        pass
    assert time.thread_time() - started < 0.5


class CountingRedactor(Redactor):
    """Counts the characters searched for secret-shaped tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.searched = 0

    def contains_secret(self, text: Union[str, bytes]) -> bool:
        self.searched += len(text)
        return super().contains_secret(text)


def test_searching_text_for_secrets_has_its_own_budget() -> None:
    """Searching text for secret-shaped tokens costs far more per character than copying it
    (digits most): one evaluation searches MAX_TAINT_SCANS characters, and treats what it
    could not search as secret."""
    texts = {f"t{i}": f"{i} " + "1234 5678 " * 799 for i in range(6)}  # 7,992 characters
    redactor = CountingRedactor()
    template = compile_template(" ".join(f"{{t{i} == 'x'}}" for i in range(6)), redactor)
    line, errors = template.render(texts, {})
    assert 0 < redactor.searched <= MAX_TAINT_SCANS
    searched = MAX_TAINT_SCANS // 7_992
    assert line.split(" ") == ["False"] * searched + [MASK] * (6 - searched)
    assert errors == []


def test_a_rendered_line_is_bounded() -> None:
    template = compile_template("{s}" * 30, REDACTOR)
    line, _ = template.render({"s": "z" * 5000}, {})
    assert len(line) == MAX_LINE + 3 and line.endswith("...")


def test_isinstance_with_a_huge_tuple_of_classes_is_bounded() -> None:
    with pytest.raises(EvaluationError, match="classes"):
        evaluate("isinstance(x, classes)", {"x": 1, "classes": (str,) * 100_000})


# --- compiling never warns, whatever the host's warning filters (9.10) ----------------------


_WARNING_SCRIPT = textwrap.dedent(
    r"""
    from peephole.agent.safe.expressions import compile_expression, compile_template
    from peephole.agent.safe.redaction import MASK, Redactor

    redactor = Redactor()
    checks = [
        (r'x == "\d"', {"x": "\\d"}, True),
        (r'b"\d" == y', {"y": b"\\d"}, True),
        ("1 is x", {"x": 1}, True),
        ("x is 1", {"x": 1}, True),
        ("x is not ()", {"x": 1}, True),
        ("'a' is x", {"x": "b"}, False),
        ("1if x else 2", {"x": 0}, 2),
    ]
    for source, f_locals, expected in checks:
        value = compile_expression(source, redactor).evaluate(f_locals, {})
        assert value == expected, (source, value)
    line, errors = compile_template(r'{x == "\d"} {1 is x}', redactor).render({"x": 1}, {})
    assert line == "False True" and errors == [], (line, errors)
    """
)


@pytest.mark.parametrize("flags", [[], ["-W", "error"], ["-W", "always"]])
def test_compiling_never_warns_nor_depends_on_warning_filters(flags: List[str]) -> None:
    result = subprocess.run(
        [sys.executable, *flags, "-c", _WARNING_SCRIPT],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""
