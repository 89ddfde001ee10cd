"""Taint: whatever an expression derives from a secret (a slice, a format spec, a string
operation, a comparison) is redacted as a whole, so a probe can never print a fragment of a
token or answer yes/no about it. The derivation suite generates such expressions at random and
checks that no piece of a secret longer than 3 characters gets out."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from targets import shop

from conftest import SHOP_PATH, Collector, logpoint, shop_line, tracepoint
from peephole.agent.core import Agent
from peephole.agent.safe.capture import Capturer
from peephole.agent.safe.expressions import (
    TAINTED,
    EvaluationError,
    compile_expression,
    compile_template,
)
from peephole.agent.safe.redaction import MASK, Redactor
from peephole.protocol import Limits

REDACTOR = Redactor()


def _luhn_card(prefix: str) -> str:
    """A 16-digit card number that passes the Luhn check."""
    for last in "0123456789":
        digits = prefix + last
        total = 0
        for index, char in enumerate(reversed(digits)):
            digit = int(char) * (2 if index % 2 else 1)
            total += digit - 9 if digit > 9 else digit
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


JWT_SIGNATURE = "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
JWT = f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{JWT_SIGNATURE}"
CARD = _luhn_card("453957876362148")
AWS_KEY = "AKIAZ7QW3XR5TB2KP9LM"
DB_PASSWORD = "Zq8vLw3nPxK2"
DSN = f"postgres://app:{DB_PASSWORD}@db.internal:5432/shop"
BEARER_TOKEN = "9f8e7d6c5b4a39281706aa"
BEARER = f"Bearer {BEARER_TOKEN}"

# (local name, value, the part of it that is secret)
SECRETS: List[Tuple[str, Any, str]] = [
    ("blob", JWT, JWT_SIGNATURE),
    ("card", CARD, CARD),
    ("card_int", int(CARD), CARD),
    ("aws", AWS_KEY, AWS_KEY[4:]),
    ("link", DSN, DB_PASSWORD),
    ("header", BEARER, BEARER_TOKEN),
    ("raw", BEARER.encode(), BEARER_TOKEN),
]


def _scope(secrets: List[Tuple[str, Any, str]]) -> Dict[str, Any]:
    f_locals: Dict[str, Any] = {name: value for name, value, _ in secrets}
    f_locals.update({"creds": {"user": "ada", "password": "hunter2"}, "n": 3, "word": "plain",
                     "pairs": [("Authorization", "hunter2"), ("accept", "text/html")]})  # fmt: skip
    return f_locals


F_LOCALS = _scope(SECRETS)
# The same shapes with other secrets in them: an expression that gives an answer about a secret
# gives different answers for the two.
OTHER_CARD = _luhn_card("402400717776155")
OTHER_JWT = JWT.replace(JWT_SIGNATURE, "Xk2" + JWT_SIGNATURE[3:][::-1])
OTHER_LOCALS = _scope([
    ("blob", OTHER_JWT, ""),
    ("card", OTHER_CARD, ""),
    ("card_int", int(OTHER_CARD), ""),
    ("aws", "AKIAQ2LM9TB5RX3ZW7KP", ""),
    ("link", DSN.replace(DB_PASSWORD, "mK4tY7rWq2Zs"), ""),
    ("header", "Bearer 11aa22bb33cc44dd55ee66", ""),
    ("raw", b"Bearer 11aa22bb33cc44dd55ee66", ""),
])  # fmt: skip


def _fragments(secret: str) -> Iterator[str]:
    """Every piece of ``secret`` of 4 characters (any longer piece contains one)."""
    for start in range(len(secret) - 3):
        yield secret[start : start + 4]


def assert_no_fragment(text: str) -> None:
    for _, _, secret in SECRETS:
        for fragment in _fragments(secret):
            assert fragment not in text, f"{fragment!r} of a secret in {text!r}"


def render(source: str) -> str:
    line, errors = compile_template(source, REDACTOR).render(F_LOCALS, {})
    return line + "\n" + "\n".join(errors)


def watch(source: str) -> str:
    """The JSON a snapshot would carry for one watch expression."""
    try:
        value: object = compile_expression(source, REDACTOR).evaluate(F_LOCALS, {})
    except EvaluationError as exc:
        value = exc
    frames = Capturer(Limits(), REDACTOR).frames([], (), [(source, value)])
    return json.dumps(frames["watches"])


# --- the leaks of issue 10, each by name -----------------------------------------------------


@pytest.mark.parametrize(
    "template",
    ["{blob[1:]}", "{card[:9]}{card[10:]}", "{aws:.19}", "{link[11:]}", "{header[7:]}",
     "{header:.12}", "{blob[::-1]}", "{card[0]}{card[1]}{card[2]}{card[3]}{card[4]}",
     "{blob + '!'}", "{'x' + blob[40:]}", "{card_int // 10}", "{card_int % 10**8}",
     "{str(card_int)[1:]}", "{repr(blob)[2:]}", "{raw[7:]}", "{(aws * 2)[1:]}", "{aws!r:.15}"],
)  # fmt: skip
def test_derived_values_are_redacted_in_templates(template: str) -> None:
    text = render(template)
    assert_no_fragment(text)
    assert MASK in text


@pytest.mark.parametrize(
    "source", ["blob[1:]", "link[11:]", "aws[:19]", "f'{aws:.19}'", "card[:9] + card[10:]"]
)
def test_derived_values_are_redacted_in_watches(source: str) -> None:
    text = watch(source)
    assert_no_fragment(text)
    assert TAINTED in text


@pytest.mark.parametrize(
    "source",
    ["creds == {'user': 'ada', 'password': 'hunter2'}", "aws[0] == 'A'", "aws < 'M'",
     "'7EXA' in aws", "len(blob) > 10", "card_int > 4000000000000000",
     "pairs == [('Authorization', 'hunter2'), ('accept', 'text/html')]",
     "max(['a', blob]) == blob", "blob if aws[0] == 'A' else 'no'"],
)  # fmt: skip
def test_answers_about_a_secret_are_not_given(source: str) -> None:
    """True and False alike end in the same error: a condition counts as false, a watch shows
    the error, the template the mask; nothing tells one answer from the other."""
    expression = compile_expression(source, REDACTOR)
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate(F_LOCALS, {})
    assert str(caught.value) == TAINTED


def test_errors_about_a_secret_do_not_quote_it() -> None:
    for source in ("int(blob[40:])", "creds[blob[40:]]", "{'a': 1}[aws[4:]]"):
        with pytest.raises(EvaluationError) as caught:
            compile_expression(source, REDACTOR).evaluate(F_LOCALS, {})
        assert str(caught.value) == TAINTED
    assert_no_fragment(render("{int(blob[40:])} {creds[blob[40:]]}"))


def test_reading_a_value_whole_is_not_a_derivation() -> None:
    """A value shown whole is masked by rendering and capture, not refused: the person still
    sees that a token is there, and the rest of the text."""
    assert render("{link}").startswith(f"postgres://app:{MASK}@db.internal")
    assert render("{header}").startswith(f"Bearer {MASK}")
    assert f"postgres://app:{MASK}@" in watch("link")
    assert render("{word[1:3]} {n * 2} {word == 'plain'}").startswith("la 6 True")


@pytest.mark.parametrize(
    "source",
    ["pairs[0][1]", "pairs[0][1][1:]", "pairs[1][1][:4]", "asgi[0][1][8:]", "asgi[0][1]",
     "env[b'DB_PASSWORD'][1:]", "env[b'DB_PASSWORD']", "pairs == []"],
)  # fmt: skip
def test_values_read_from_hidden_collections_are_redacted(source: str) -> None:
    """Header and cookie pairs, and an environment keyed by bytes, are hidden by capture; a
    value read out of them, and whatever is derived from it, is redacted too."""
    f_locals = dict(F_LOCALS, asgi=[(b"cookie", b"session=abc123def456")],
                    env={b"DB_PASSWORD": b"s3cr3tpassw0rd", b"HOME": b"/root"})  # fmt: skip
    try:
        value: object = compile_expression(source, REDACTOR).evaluate(f_locals, {})
    except EvaluationError as exc:
        value = exc
    for secret in ("hunter2", "abc123def456", "s3cr3tpassw0rd", "text/html"):
        for fragment in _fragments(secret):
            assert fragment not in str(value)


def test_a_card_number_held_as_an_int_is_masked_when_captured() -> None:
    text = watch("card_int") + watch("[card_int, n]") + watch("{'n': card_int}")
    assert_no_fragment(text)
    assert '{"t": "int", "cut": "redacted"}' in text
    assert '{"t": "int", "v": 3}' in text  # other numbers are shown


def test_identity_and_type_are_not_answers_about_a_secret() -> None:
    for source in ("blob is not None", "isinstance(blob, str)", "type(aws).__name__ == 'str'",
                   "bool(blob)"):  # fmt: skip
        assert compile_expression(source, REDACTOR).evaluate(F_LOCALS, {}) is True


def test_the_whole_line_is_masked() -> None:
    """Halves of a token that are harmless alone are masked once the line puts them together."""
    f_locals = {"left": AWS_KEY[:8], "right": AWS_KEY[8:]}
    line, _ = compile_template("key={left}{right}", REDACTOR).render(f_locals, {})
    assert line == f"key={MASK}"


def test_long_strings_in_containers_are_masked_before_they_are_cut() -> None:
    line = render("{items}".replace("items", "[word * 10, blob]"))
    assert_no_fragment(line)


def test_fragments_never_reach_the_redactors_cache_and_it_is_never_walked() -> None:
    """The redactor caches the texts it searched; a snapshot of a frame that holds the agent
    (``agent = peephole.start()`` in a main function) must show neither."""
    redactor = Redactor()
    compile_template("{aws[1:]} {aws:.19} {blob[::-1]}", redactor).render(F_LOCALS, {})
    seen = json.dumps(Capturer(Limits(), Redactor()).value({"r": redactor}))
    assert '"t": "peephole.agent.safe.redaction.Redactor", "cut": "unsupported"' in seen
    walked = json.dumps(  # what the cache would show if it were walked
        Capturer(Limits(), Redactor()).value(list(vars(redactor).get("_texts", {})))
    )
    assert_no_fragment(walked)


# --- through a running probe -------------------------------------------------------------------


def test_a_running_probe_never_sends_a_fragment(agent: Agent, collector: Collector) -> None:
    """Logpoint, watch and condition on a real probed line: the event carries the mask, the
    condition counts as false and its status says why without quoting the value."""
    line = shop_line("method")
    agent.set_probe(logpoint("log", SHOP_PATH, line, "owner={self.owner[1:]} key={self.owner:.19}"))
    agent.set_probe(tracepoint("watch", SHOP_PATH, line, watches=["self.owner[4:]"]))
    agent.set_probe(tracepoint("cond", SHOP_PATH, line, condition="self.owner[0] == 'A'"))
    shop.Cart(AWS_KEY).add(1.0)
    agent.flush()
    (log,) = collector.of("log")
    assert log["message"] == f"owner={MASK} key={MASK}"
    (snapshot,) = collector.of("watch")
    assert snapshot["watches"] == [{"expr": "self.owner[4:]", "error": TAINTED}]
    assert collector.of("cond") == []
    status = agent.status("cond")
    assert status is not None and TAINTED in (status.message or "")
    sent = json.dumps(collector.events) + (status.message or "")
    for fragment in _fragments(AWS_KEY[4:]):  # the secret here (ids are random hex: only it)
        assert fragment not in sent


# --- the derivation suite ----------------------------------------------------------------------

_TEXT_NAMES = ["blob", "card", "aws", "link", "header"]
_index = st.integers(min_value=-60, max_value=120)
_maybe_index = st.one_of(st.none(), _index).map(lambda i: "" if i is None else str(i))
_step = st.sampled_from(["", "1", "2", "3", "-1", "-2", "5"])


@st.composite
def _slice(draw: st.DrawFn, name: str) -> str:
    start, stop, step = draw(_maybe_index), draw(_maybe_index), draw(_step)
    return f"{name}[{start}:{stop}{':' + step if step else ''}]"


@st.composite
def _derivation(draw: st.DrawFn) -> str:
    """One expression that derives text from a secret."""
    name = draw(st.sampled_from(_TEXT_NAMES))
    kind = draw(st.sampled_from(["slice", "index", "concat", "repeat", "fstring", "call",
                                 "nested", "compare", "raw"]))  # fmt: skip
    if kind == "slice":
        return draw(_slice(name))
    if kind == "index":
        return f"{name}[{draw(_index)}]"
    if kind == "concat":
        return f"{draw(_slice(name))} + {draw(_slice(draw(st.sampled_from(_TEXT_NAMES))))}"
    if kind == "repeat":
        return f"({name} * {draw(st.integers(0, 3))})[{draw(_maybe_index)}:{draw(_maybe_index)}]"
    if kind == "fstring":
        spec = draw(_spec())
        return f"f'{{{name}{spec}}}'[{draw(_maybe_index)}:]"
    if kind == "call":
        call = draw(st.sampled_from(["str", "repr"]))
        return f"{call}({name})[{draw(_maybe_index)}:{draw(_maybe_index)}]"
    if kind == "nested":
        return f"{draw(_slice(name))}[{draw(_maybe_index)}:]"
    if kind == "compare":
        return f"{draw(_slice(name))} == {draw(st.text('AKIZ7Q', max_size=4))!r}"
    return f"raw[{draw(_maybe_index)}:{draw(_maybe_index)}]"


@st.composite
def _spec(draw: st.DrawFn) -> str:
    conversion = draw(st.sampled_from(["", "!r", "!s"]))
    align = draw(st.sampled_from(["", "<", ">", "^", "*>", "_^"]))
    width = draw(st.sampled_from(["", "5", "20", "40"]))
    precision = draw(st.sampled_from(["", ".1", ".4", ".8", ".15", ".19", ".30"]))
    spec = align + width + precision
    return conversion + (":" + spec if spec else "")


@st.composite
def _template(draw: st.DrawFn) -> str:
    fields = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            fields.append("{" + draw(_derivation()) + "}")
        else:
            fields.append("{" + draw(st.sampled_from(_TEXT_NAMES)) + draw(_spec()) + "}")
    return " ".join(fields)


_SUITE = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@_SUITE
@given(_template())
def test_derivation_suite_templates(template: str) -> None:
    assert_no_fragment(render(template))


@_SUITE
@given(_derivation())
def test_derivation_suite_watches(source: str) -> None:
    assert_no_fragment(watch(source))


def _outcome(source: str, f_locals: Dict[str, Any]) -> str:
    try:
        return repr(compile_expression(source, REDACTOR).evaluate(f_locals, {}))
    except EvaluationError as exc:
        return f"error: {exc}"


@_SUITE
@given(_derivation())
def test_derivation_suite_conditions_give_no_answer(source: str) -> None:
    """A condition or watch derived from a secret has the same outcome whatever the secret
    holds: it is not an oracle."""
    assert _outcome(source, F_LOCALS) == _outcome(source, OTHER_LOCALS)
