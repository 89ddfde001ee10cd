"""The agent's secret formats stay in step with detect-secrets, where most of them come from.

The agent copies the regexes (its dependencies stay minimal), so this cross-checks, on the main
interpreter where detect-secrets is installed: every sample that a detect-secrets plugin
recognises is masked by the agent whole, and every detect-secrets plugin the agent derives
from still exists.
"""

from __future__ import annotations

from importlib import metadata

import pytest
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import default_settings

from peephole.agent.safe.redaction import MASK, Redactor
from peephole.agent.safe.secret_formats import DETECT_SECRETS_VERSION

# (detect-secrets secret type, a sample it recognises)
SAMPLES = [
    ("AWS Access Key", "AKIAZ7Q2K4M6N8P3R5T7"),
    ("GitHub Token", "ghp_" + "aB3dE5fG7hJ9kL2mN4pQ6rS8tU0vW1xY3zA5"),
    ("GitLab Token", "glpat-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm"),
    ("Slack Token", "xoxb-1234567890-1234567890123-" + "abcdefghijklmnopqrstuvwx"),
    (
        "Slack Token",
        "https://hooks.slack.com/services/T01234567/B01234567/abcdefghijklmnopqrstuvwx",
    ),
    ("Stripe Access Key", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("Stripe Access Key", "rk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("SendGrid API Key", "SG." + "a1B2c3D4e5F6g7H8i9J0kL" + "." + "m" * 43),
    ("Square OAuth Secret", "sq0csp-" + "A" * 43),
    ("PyPI Token", "pypi-AgEIcHlwaS5vcmc" + "x" * 72),
    ("OpenAI Token", "sk-" + "a" * 20 + "T3BlbkFJ" + "b" * 20),
    ("Mailchimp Access Key", "0123456789abcdef0123456789abcdef-us12"),
    ("Twilio API Key", "SK" + "0123456789abcdef0123456789abcdef"),
    ("Azure Storage Account access key", "AccountKey=" + "a" * 86 + "=="),
    (
        "Private Key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ),
    (
        "Private Key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
        "-----END OPENSSH PRIVATE KEY-----",
    ),
    ("JSON Web Token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2J5dGVz"),
    ("Basic Auth Credentials", "https://user:s3cr3tpass@example.com/path"),
]


def detected(text: str) -> set[str]:
    with default_settings():
        return {secret.type for secret in scan_line(text)}


def test_the_version_the_formats_were_derived_from_is_installed() -> None:
    installed = metadata.version("detect-secrets")
    assert installed.split(".")[:2] == DETECT_SECRETS_VERSION.split(".")[:2], (
        f"detect-secrets {installed} is installed; the agent's formats come from "
        f"{DETECT_SECRETS_VERSION}: compare its plugins and update secret_formats.py"
    )


@pytest.mark.parametrize(("kind", "sample"), SAMPLES)
def test_what_detect_secrets_recognises_the_agent_masks(kind: str, sample: str) -> None:
    assert kind in detected(sample), f"detect-secrets no longer calls the sample a {kind}"
    masked = Redactor().redact_text(f"value: {sample} end")
    assert masked is not None and MASK in masked
    secret_part = sample.split("user:")[-1].split("@")[0] if kind.startswith("Basic") else sample
    assert secret_part not in masked
