"""Redaction: secret names, value patterns, configuration and the server's policy."""

from __future__ import annotations

import pytest

from peephole.agent.config import AgentConfig
from peephole.agent.safe.redaction import DEFAULT_SECRET_NAMES, MASK, Redactor, normalise
from peephole.protocol import AgentPolicy


@pytest.fixture()
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    "name",
    [
        "password", "PASSWORD", "db_password", "userPassword", "X-Auth-Token", "csrftoken",
        "api_key", "apiKey", "API-KEY", "Authorization", "session_id", "sessionid", "cookie",
        "set-cookie", "jwt", "private_key", "credit_card", "card_number", "cvv", "user_ssn",
        "userSSN", "pin", "card_pin", "PINCode", "aws_secret_access_key", "client_secret",
        "refresh_token", "auth", "auth_header", "passwd", "pwd", "otp", "credentials",
    ],
)  # fmt: skip
def test_secret_names(redactor: Redactor, name: str) -> None:
    assert redactor.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["user", "total", "shipping", "spinner", "author", "authority", "classname", "mapping",
     "items", "keyboard", "id", "name", "pinned_count", ""],
)  # fmt: skip
def test_ordinary_names(redactor: Redactor, name: str) -> None:
    assert not redactor.is_secret_name(name)


def test_normalise() -> None:
    assert normalise("X-Auth_Token") == "xauthtoken"


def test_default_names_are_normalised() -> None:
    assert all(name == normalise(name) for name in DEFAULT_SECRET_NAMES)
    assert {"password", "token", "apikey", "ssn", "cvv", "jwt"} <= DEFAULT_SECRET_NAMES


def test_extra_and_allowed_names() -> None:
    redactor = Redactor(extra_names=["tenant-id", "Internal_Note"], allow_names=["session"])
    assert redactor.is_secret_name("tenant_id")
    assert redactor.is_secret_name("order_internal_note")
    assert not redactor.is_secret_name("session")  # allowed: removed from the list
    assert not redactor.is_secret_name("db_session")
    assert redactor.is_secret_name("password")


def test_allowed_name_is_exact() -> None:
    redactor = Redactor(allow_names=["token_count"])
    assert not redactor.is_secret_name("token_count")
    assert not redactor.is_secret_name("TOKEN-COUNT")
    assert redactor.is_secret_name("token")


def test_name_cache_is_bounded(redactor: Redactor) -> None:
    for index in range(10_000):
        redactor.is_secret_name(f"name{index}")
    assert len(redactor._names) <= 4096


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", f"card {MASK} ok"),
        ("4111-1111-1111-1111", MASK),
        ("378282246310005", MASK),  # Amex
        ("Authorization: Bearer abc.def-ghi123", f"Authorization: Bearer {MASK}"),
        ("basic dXNlcjpwYXNz", f"basic {MASK}"),
        ("postgres://app:hunter2@db:5432/x", f"postgres://app:{MASK}@db:5432/x"),
        ("/login?user=ada&password=hunter2&x=1", f"/login?user=ada&password={MASK}&x=1"),
        ('{"api_key": "abc123"}', f'{{"api_key": "{MASK}"}}'),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", MASK),
        ("key AKIAIOSFODNN7EXAMPLE", f"key {MASK}"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", MASK),
    ],
)
def test_value_patterns(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hello", "", "4111111111111112",  # fails the Luhn check
        "order 1234 on 2024-01-01 12:30", "id 14111111111111111111", "https://example.com/a",
        "a bearer of news", "12:30 meeting",
    ],
)  # fmt: skip
def test_text_without_secrets(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) is None


def test_configured_patterns_and_invalid_ones() -> None:
    redactor = Redactor(patterns=[r"\bEMP-\d{4}\b", "unclosed("])
    assert redactor.redact_text("employee EMP-1234 left") == f"employee {MASK} left"
    assert redactor.redact_text("EMP-12") is None
    assert len(redactor.errors) == 1
    assert "unclosed(" in redactor.errors[0]


def test_text_cache_gives_the_same_answers(redactor: Redactor) -> None:
    for _ in range(2):
        assert redactor.redact_text("token=abc") == f"token={MASK}"
        assert redactor.redact_text("plain") is None
    for index in range(5000):
        redactor.redact_text(f"text {index}")
    assert len(redactor._texts) <= 2048


def test_long_text_is_redacted_without_caching(redactor: Redactor) -> None:
    text = "x" * 10_000 + " password=hunter2"
    assert redactor.redact_text(text) == "x" * 10_000 + f" password={MASK}"
    assert text not in redactor._texts


def test_from_policy_merges_config_and_policy() -> None:
    config = AgentConfig(service="svc", redact_names=["tenant"], redact_patterns=[r"ACME-\d+"])
    policy = AgentPolicy(
        redact_names=["region"], allow_names=["session"], redact_patterns=[r"ZZ-\d+"]
    )
    redactor = Redactor.from_policy(config, policy)
    assert redactor.is_secret_name("tenant_name")
    assert redactor.is_secret_name("region")
    assert not redactor.is_secret_name("session")
    assert redactor.redact_text("ACME-1 ZZ-2") == f"{MASK} {MASK}"
    assert Redactor.from_policy(config, None).is_secret_name("session")
