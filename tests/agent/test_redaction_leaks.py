"""Leaks of issue 10 closed in the agent: names of any type, secret formats, header and cookie
collections, the process environment, and no over-redaction of flags and counts.

Stdlib objects only, so this runs on every interpreter; the real frameworks' objects are
checked in ``tests/security``.
"""

from __future__ import annotations

import http.cookies
import json
import os
import time
from typing import Any, Iterator

import pytest

from peephole.agent.safe.capture import Capturer
from peephole.agent.safe.redaction import (
    MASK,
    Redactor,
    contains_secret,
    mask_text,
    normalise,
)
from peephole.protocol import Limits

SECRET = "s3cr3t-VALUE-7f1d"


@pytest.fixture()
def capturer() -> Capturer:
    return Capturer(Limits(), Redactor())


def shown(capturer: Capturer, value: Any) -> str:
    return json.dumps(capturer.value(value))


@pytest.mark.parametrize(
    "name",
    ["api key", "api-key", "API_KEY", "Api.Key", "db.password", b"DB_PASSWORD",
     b"AWS_SECRET_ACCESS_KEY", b"x-api-key", "stripe_key", "hmac_key", "master_key",
     "private key", "HMAC", "sentry_dsn", "HTTP_COOKIE", "HTTP_X_CUSTOM", "user pw",
     "license-key", "ssh_key", "webhookSecret", "otp_code"],
)  # fmt: skip
def test_names_match_whatever_their_type_case_and_separators(name: Any) -> None:
    assert Redactor().is_secret_name(name)


@pytest.mark.parametrize("name", ["keyboard", "monkey", "HTTPServer", b"content_type", "salty"])
def test_ordinary_names_stay_ordinary(name: Any) -> None:
    assert not Redactor().is_secret_name(name)


def test_normalise_removes_dots_spaces_and_reads_bytes() -> None:
    assert normalise("Db.Pass word") == "dbpassword"
    assert normalise(b"X-API_Key") == "xapikey"


TOKENS = [
    "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "rk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "ghp_" + "A" * 36,
    "github_pat_11ABCDEFG0123456789_" + "abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-2631584742-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "xoxp-2631584742-1234567890-abcdef0123456789",
    "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "glpat-" + "xXo3DzuWaBrz5Bzf4tGz",
    "SG." + "a" * 22 + "." + "b" * 43,
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX2J5dGVz",
]


@pytest.mark.parametrize("token", TOKENS)
def test_token_formats_are_masked(token: str) -> None:
    assert Redactor().redact_text(f"using {token} now") == f"using {MASK} now"


def test_pem_private_key_block_is_masked_whole() -> None:
    block = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
    )
    assert Redactor().redact_text(f"key:\n{block}\nend") == f"key:\n{MASK}\nend"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=correct horse battery", f"password={MASK}"),
        ("login pw=hunter2 user=bob", f"login pw={MASK} user=bob"),
        ("db.password: two words", f"db.password: {MASK}"),
        ('{"password": "correct horse battery"}', f'{{"password": "{MASK}"}}'),
        ("card 4111.1111.1111.1111 ok", f"card {MASK} ok"),
        ("card 4111  1111  1111  1111 ok", f"card {MASK} ok"),
        ("ref-4111111111111111", f"ref-{MASK}"),
        ("CARD4111111111111111", f"CARD{MASK}"),
        # a secret key=value inside the value of another key=value
        ("put: password=hunter2-s3cr3t", f"put: password={MASK}"),
        ("a:password=xyz12345", f"a:password={MASK}"),
        ("x: token=abcdef123 y=1", f"x: token={MASK} y=1"),
        ("url: https://h/?page=2&api_key=zzzz1234", f"url: https://h/?page=2&api_key={MASK}"),
        ('data: "password=abc123"', f'data: "password={MASK}"'),
    ],
)
def test_whole_values_and_card_variants(text: str, expected: str) -> None:
    assert Redactor().redact_text(text) == expected


def test_many_plain_key_values_are_scanned_in_linear_work() -> None:
    """Each key=value is looked at once, so a long chain of them is not quadratic."""
    text = "a=" * 50_000 + "password=hunter2"
    assert Redactor().redact_text(text) == "a=" * 50_000 + f"password={MASK}"


def test_public_whole_text_api() -> None:
    assert contains_secret("auth: Bearer abcdefgh12345")
    assert contains_secret(b"sk_live_4eC39HqLyjWDarjtT1zdp7dc")
    assert not contains_secret("order 1234 shipped")
    assert mask_text("pw=hunter2") == f"pw={MASK}"
    assert mask_text("nothing here") == "nothing here"
    custom = Redactor(patterns=[r"EMP-\d+"])
    assert contains_secret("EMP-12", custom) and not contains_secret("EMP-12")


def test_asgi_header_pairs_hide_values_and_show_names(capturer: Capturer) -> None:
    scope = {
        "type": "http",
        "headers": [
            (b"host", b"shop"),
            (b"cookie", SECRET.encode()),
            (b"x-api-key", SECRET.encode()),
        ],
    }
    text = shown(capturer, scope)
    assert SECRET not in text and "shop" not in text
    assert '"v": "cookie"' in text and '"v": "x-api-key"' in text


def test_str_header_pairs_and_a_single_secret_pair(capturer: Capturer) -> None:
    assert SECRET not in shown(capturer, [("Content-Type", "json"), ("X-Trace", SECRET)])
    assert SECRET not in shown(capturer, ("authorization", SECRET))
    assert SECRET not in shown(capturer, [b"set-cookie", SECRET.encode()])


def test_hidden_values_do_not_reuse_or_leave_cached_nodes(capturer: Capturer) -> None:
    """A str shown elsewhere first must still be hidden in a header, and the reverse."""
    shown(capturer, {"plain": SECRET})
    assert SECRET not in shown(capturer, [(b"x-token", "a"), ("x-other", SECRET)])
    assert SECRET in shown(capturer, {"plain": SECRET})


def test_lists_of_ordinary_pairs_are_shown(capturer: Capturer) -> None:
    assert "3" in shown(capturer, [("apples", 3), ("pears", 4)])
    assert "beta" in shown(capturer, [("alpha", "beta")])


@pytest.fixture()
def environment() -> Iterator[None]:
    os.environ["PEEPHOLE_TEST_DB_PASSWORD"] = SECRET
    os.environ["PEEPHOLE_TEST_REGION"] = SECRET + "-region"
    try:
        yield
    finally:
        del os.environ["PEEPHOLE_TEST_DB_PASSWORD"]
        del os.environ["PEEPHOLE_TEST_REGION"]


@pytest.mark.usefixtures("environment")
def test_process_environment_is_secret(capturer: Capturer) -> None:
    environ_data = vars(os.environ)["_data"]
    for value in (os.environ, environ_data, {"env": os.environ}):
        text = shown(capturer, value)
        assert SECRET not in text, text[:300]
    assert "PEEPHOLE_TEST_REGION" in shown(capturer, environ_data)  # names stay visible


@pytest.mark.usefixtures("environment")
def test_a_copy_of_the_environment_keeps_secret_names_hidden(capturer: Capturer) -> None:
    copied = dict(os.environ)
    text = shown(capturer, copied)
    assert "PEEPHOLE_TEST_DB_PASSWORD" in text
    assert SECRET + '"' not in text.replace(SECRET + "-region", "")


def test_bytes_keys_are_matched_by_name(capturer: Capturer) -> None:
    assert SECRET not in shown(capturer, {b"AWS_SECRET_ACCESS_KEY": SECRET.encode()})
    assert "visible" in shown(capturer, {b"REGION": b"visible"})


def test_stdlib_cookies_are_secret(capturer: Capturer) -> None:
    cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    cookie["theme"] = SECRET
    assert SECRET not in shown(capturer, cookie)
    assert SECRET not in shown(capturer, cookie["theme"])


def test_wsgi_environ_headers_are_secret(capturer: Capturer) -> None:
    environ = {"PATH_INFO": "/cart", "HTTP_X_TENANT": SECRET, "HTTP_COOKIE": SECRET}
    text = shown(capturer, environ)
    assert SECRET not in text and "/cart" in text


def test_flags_counts_and_none_under_secret_names_are_shown(capturer: Capturer) -> None:
    node = capturer.value(
        {
            "fuzzy_with_tokens": True,
            "token_count": 3,
            "password": None,
            "api_key": "k",
            "pin": 1234,
            "session": {"a": 1},
        }
    )
    values = {key["v"]: value for key, value in node["entries"]}
    assert values["fuzzy_with_tokens"] == {"t": "bool", "v": True}
    assert values["token_count"] == {"t": "int", "v": 3}
    assert values["password"] == {"t": "NoneType", "v": None}
    assert values["api_key"] == {"t": "str", "cut": "redacted"}
    assert values["pin"] == {"t": "int", "cut": "redacted"}  # a numeric secret's name
    assert values["session"] == {"t": "dict", "cut": "redacted"}


def test_flags_under_secret_local_names_are_shown(capturer: Capturer) -> None:
    class Options:
        def __init__(self) -> None:
            self.fuzzy_with_tokens = False
            self.token = SECRET

    node = capturer.value(Options())
    assert node["fields"]["fuzzy_with_tokens"] == {"t": "bool", "v": False}
    assert node["fields"]["token"] == {"t": "str", "cut": "redacted"}


def test_instance_tags_leave_without_secrets() -> None:
    from peephole.agent.config import AgentConfig
    from peephole.agent.delivery.transport import Transport

    config = AgentConfig(
        service="svc",
        server="http://127.0.0.1:9",
        tags={"api_token": SECRET, "dsn": f"postgres://shop:{SECRET}@db/shop", "team": "payments"},
    )
    tags = Transport(config).instance_info().tags
    assert SECRET not in str(tags)
    assert tags["team"] == "payments" and tags["api_token"] == MASK


def test_numbers_under_configured_names_stay_hidden() -> None:
    capturer = Capturer(Limits(), Redactor(extra_names=["discount"]))
    node = capturer.value({"discount": 0.25, "order_discount": 3, "token_count": 3})
    values = {key["v"]: value for key, value in node["entries"]}
    assert values["discount"] == {"t": "float", "cut": "redacted"}
    assert values["order_discount"] == {"t": "int", "cut": "redacted"}
    assert values["token_count"] == {"t": "int", "v": 3}


@pytest.mark.parametrize("text", ["pw_" * 1000 + "x", "a_" * 1500 + "=", "secret." * 500 + ":"])
def test_key_value_masking_is_linear_on_adversarial_names(text: str) -> None:
    """Nested repetition in the key pattern took 45 s on 3,000 characters; now ~1 ms. The
    bound only catches that blow-up: it is the CPU time of this thread (a loaded machine
    makes it wait, not work more), and 1,000 times what it takes on a quiet machine."""
    started = time.thread_time()
    Redactor().redact_text(text)
    assert time.thread_time() - started < 1.0


def test_a_pair_shown_before_is_hidden_inside_a_header_collection(capturer: Capturer) -> None:
    """Mapping entries are remembered by their (key, value) pair: one shown in a plain dict
    must not come back unmasked inside a header collection, where text values are hidden."""

    class Headers:
        def __init__(self, store: Any) -> None:
            self.store = store

    Headers.__module__ = "starlette.datastructures"
    Headers.__qualname__ = "Headers"
    plain = {"x-tenant": "acme-blue", "x-count": 7}
    first, again = shown(capturer, plain), shown(capturer, plain)
    assert first == again and "acme-blue" in again
    hidden = shown(capturer, Headers(dict(plain)))
    assert "acme-blue" not in hidden and "x-tenant" in hidden
