"""Redaction patterns that could backtrack for a very long time in the agents' ``re`` are
refused by the API; the usual secret formats are accepted."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from peephole.server import regex_safety

pytestmark = pytest.mark.server

SAFE = [
    r"AKIA[0-9A-Z]{16}",
    r"Bearer\s+[A-Za-z0-9._~+/-]+=*",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"sk_live_[0-9a-zA-Z]{24,}",
    r"-----BEGIN [A-Z ]+PRIVATE KEY-----",
    r"(?i)password",
    r"xox[baprs]-[0-9A-Za-z-]{10,48}",
    r"(?:ghp|gho)_[A-Za-z0-9]{36}",
]
UNSAFE = [
    r"(a+)+$",
    r"(a*)*b",
    r"(a|aa)+$",
    r"(\w+\s?)*$",
    r"(a|a)*c",
    r"(.*a){12}",
    r"(x+x+)+y",
    r"(a)\1",
    r"(?=a)a",
    r"a+b+c+d+e",
]


@pytest.mark.parametrize("pattern", SAFE)
def test_usual_secret_formats_are_accepted(pattern: str) -> None:
    regex_safety.check(pattern)


@pytest.mark.parametrize("pattern", UNSAFE)
def test_backtracking_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(regex_safety.UnsafePattern):
        regex_safety.check(pattern)


def test_the_refused_ones_are_really_slow() -> None:
    """What the check prevents: one match of (a+)+$ on 26 characters takes a second or more."""
    began = time.monotonic()
    re.search(r"(a+)+$", "a" * 22 + "!")
    assert time.monotonic() - began > 0.05


def test_the_api_refuses_an_unsafe_policy(api: httpx.Client) -> None:
    refused = api.put("/services/shop/policy", json={"redact_patterns": [r"(a+)+$"]})
    assert refused.status_code == 422
    assert "repeat inside a repeat" in refused.json()["detail"][0]["msg"]
    assert api.put("/services/shop/policy", json={"redact_patterns": SAFE}).status_code == 200
