"""The secrets of the adversarial suite: one unique value per shape, known to both the
application process (which holds them) and the test (which searches every output for them).

Each :class:`Secret` has a ``label`` (its shape and where the application keeps it), the
``value`` the application holds, and the ``needle``: the part whose bytes must appear nowhere
outside the process (for a card, its digits as written; for a PEM block, its key body).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Dict, List


@dataclass(frozen=True)
class Secret:
    label: str
    value: str
    needle: str


def _token(
    seed: str,
    length: int,
    alphabet: str = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
) -> str:
    """A deterministic pseudo-random token (no dictionary word, so nothing else matches it)."""
    digest = hashlib.sha256(seed.encode()).digest()
    while len(digest) < length:
        digest += hashlib.sha256(digest).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def _luhn_card(seed: str, prefix: str = "4", length: int = 16) -> str:
    body = prefix + "".join(str(int(c, 16) % 10) for c in hashlib.sha256(seed.encode()).hexdigest())
    body = body[: length - 1]
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return body + str((10 - total % 10) % 10)


def _groups(digits: str, separator: str, size: int = 4) -> str:
    return separator.join(digits[i : i + size] for i in range(0, len(digits), size))


# Names that say "secret" in every spelling: as locals (when identifiers), str dict keys,
# bytes dict keys and object fields.
SECRET_NAMES = [
    "password", "passwd", "db_password", "DB.PASSWORD", "api key", "api-key", "API_KEY", "apiKey",
    "secret", "client_secret", "access_token", "refresh_token", "auth_token", "session_id",
    "csrftoken", "jwt", "private_key", "private key", "stripe_key", "hmac_key", "master_key",
    "signing_key", "encryption_key", "credentials", "card_number", "cvv", "ssn", "pin", "otp",
    "iban", "aws_secret_access_key", "x-api-key", "Authorization", "cookie", "set-cookie",
    "passphrase", "license_key", "ssh_key", "sentry_dsn", "webhookSecret",
]  # fmt: skip
PLACEMENTS = ("local", "dict", "bytes", "field")


def name_secrets() -> List[Secret]:
    found = []
    for name in SECRET_NAMES:
        for placement in PLACEMENTS:
            if placement == "local" and not name.isidentifier():
                continue
            value = "nv" + _token(f"{placement}:{name}", 14)
            found.append(Secret(f"name {placement}:{name}", value, value))
    return found


def format_secrets() -> List[Secret]:
    """Secret-shaped text under innocent names: the value alone must give it away."""
    card = _luhn_card("visa")
    amex = _luhn_card("amex", "37", 15)
    pem_body = _token("pem", 60, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    shapes = {
        "stripe live": "sk_live_" + _token("sk", 24),
        "stripe restricted": "rk_live_" + _token("rk", 24),
        "stripe test": "sk_test_" + _token("skt", 24),
        "github classic": "ghp_" + _token("ghp", 36),
        "github fine-grained": "github_pat_11" + _token("pat", 60),
        "slack bot": "xoxb-1234567890-1234567890123-" + _token("xoxb", 24),
        "slack user": "xoxp-1234567890-1234567890-" + _token("xoxp", 24).lower(),
        "google api": "AIza" + _token("aiza", 35),
        "gitlab": "glpat-" + _token("glpat", 20),
        "sendgrid": "SG." + _token("sg1", 22) + "." + _token("sg2", 43),
        "aws key id": "AKIA" + _token("akia", 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ" + _token("jwt", 20) + "." + _token("sig", 30),
        "openai project": "sk-proj-" + _token("openai", 40),
        "pypi": "pypi-AgEIcHlwaS5vcmc" + _token("pypi", 72),
        "slack webhook": "https://hooks.slack.com/services/T"
        + _token("t", 8)
        + "/B"
        + _token("b", 8)
        + "/"
        + _token("w", 24),
    }
    found = [Secret(f"format {label}", text, text) for label, text in shapes.items()]
    phrase = "correct horse " + _token("phrase", 10) + " staple"
    pw = _token("pw", 12)
    bearer = _token("bearer", 32)
    basic = _token("basic", 24)
    url_password = _token("urlpw", 16)
    json_key = _token("jsonkey", 18)
    found += [
        Secret(
            "format pem block",
            "-----BEGIN RSA PRIVATE KEY-----\n" + pem_body + "\n-----END RSA PRIVATE KEY-----",
            pem_body,
        ),
        Secret("format bearer header", "Authorization: Bearer " + bearer, bearer),
        Secret("format basic header", "Authorization: Basic " + basic, basic),
        Secret("format url password", f"postgres://shop:{url_password}@db:5432/shop", url_password),
        Secret("format password= phrase", "password=" + phrase, _token("phrase", 10)),
        Secret("format pw=", f"login failed pw={pw} user=ada", pw),
        Secret("format json key", f'{{"api_key": "{json_key}", "user": "ada"}}', json_key),
        Secret("format card spaces", _groups(card, " "), _groups(card, " ")),
        Secret("format card dashes", _groups(card, "-"), _groups(card, "-")),
        Secret("format card dots", _groups(card, "."), _groups(card, ".")),
        Secret("format card double spaces", _groups(card, "  "), _groups(card, "  ")),
        Secret("format card plain", card, card),
        Secret("format card prefix", "CARD" + card, card),
        Secret("format amex", amex, amex),
    ]
    return found


def framework_secrets() -> Dict[str, Secret]:
    """Header and cookie values of the real frameworks' request objects."""
    labels = [
        "starlette cookie",
        "starlette authorization",
        "starlette x-api-key",
        "werkzeug cookie",
        "werkzeug authorization",
        "werkzeug x-api-key",
        "django cookie",
        "django authorization",
        "django x-custom",
        "django COOKIES",
        "requests authorization",
        "requests cookie",
        "requests x-api-key",
        "httpx authorization",
        "httpx cookie",
        "stdlib cookie",
        "header pairs",
        "asgi x-tenant",
    ]
    return {
        label: Secret(f"framework {label}", "hv" + _token(label, 16), "hv" + _token(label, 16))
        for label in labels
    }


ENVIRONMENT = {
    "DB_PASSWORD": "ev" + _token("DB_PASSWORD", 16),
    "AWS_SECRET_ACCESS_KEY": "ev" + _token("AWS_SECRET_ACCESS_KEY", 40),
    "STRIPE_API_KEY": "ev" + _token("STRIPE_API_KEY", 16),
    "SHOP_INTERNAL_NOTE": "ev" + _token("SHOP_INTERNAL_NOTE", 16),  # no secret name at all
}


def environment_secrets() -> List[Secret]:
    return [Secret(f"environment {name}", value, value) for name, value in ENVIRONMENT.items()]


TAG_SECRET = "tg" + _token("tag", 16)
TAG_DSN_PASSWORD = "tp" + _token("tagdsn", 16)


def metadata_secrets() -> List[Secret]:
    return [
        Secret("instance tag named secret", TAG_SECRET, TAG_SECRET),
        Secret("instance tag dsn password", TAG_DSN_PASSWORD, TAG_DSN_PASSWORD),
    ]


def all_secrets() -> List[Secret]:
    return (
        name_secrets()
        + format_secrets()
        + list(framework_secrets().values())
        + environment_secrets()
        + metadata_secrets()
    )


# What must be visible, so that every path is known to have carried data at all.
CONTROL = "visible-control-" + _token("control", 10)
