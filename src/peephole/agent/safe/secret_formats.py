"""Secret formats: the token shapes value masking recognises, and where each comes from.

Most token formats are derived from the plugins of Yelp's detect-secrets 1.5.0
(https://github.com/Yelp/detect-secrets, Apache License 2.0): ``aws``, ``github_token``,
``gitlab_token``, ``slack``, ``stripe``, ``sendgrid``, ``square_oauth``, ``npm``, ``pypi_token``,
``openai``, ``mailchimp``, ``discord``, ``telegram_token``, ``twilio``, ``azure_storage_key``,
``artifactory`` and ``private_key`` (itself from pre-commit-hooks, MIT). The regexes are
copied here, not imported, because the agent's runtime dependencies stay minimal; the test
suite cross-checks them against the installed detect-secrets so a drift is seen. Formats that
detect-secrets does not cover (Google ``AIza`` keys, ``github_pat_`` fine-grained tokens,
Stripe test keys, PEM blocks as a whole, JWTs, URL passwords, ``key=value`` pairs, cards) are
peephole's own and marked so.

Each entry is ``(name, markers, regex, keep)``: ``markers`` are lower-case substrings one of
which the lower-cased text must contain before the regex runs (Python's regex engine is slow to
scan for alternations, substring tests are fast), and ``keep`` is how many leading groups of
the match survive masking ("Bearer [redacted]", "postgres://app:[redacted]@db"). Every
regex is linear in the text's length (no nested or unbounded repetition that can backtrack
over the same characters twice): they run on every captured string. The npm entry matches
from ``:_authToken=`` only, for that reason (detect-secrets also matches the ``//host/``
before it).
"""

from __future__ import annotations

from typing import List, Tuple

__all__ = ["DETECT_SECRETS_VERSION", "TOKEN_FORMATS"]

DETECT_SECRETS_VERSION = "1.5.0"

# (name, markers, regex, groups kept)
TOKEN_FORMATS: List[Tuple[str, Tuple[str, ...], str, int]] = [
    # --- derived from detect-secrets 1.5.0 -----------------------------------------------
    ("aws access key id", ("a3t", "abia", "acca", "akia", "asia"),
     r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 0),
    ("github token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
     r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", 0),
    ("gitlab token", ("glpat-", "gldt-", "glft-", "glsoat-", "glrt-"),
     r"(?:glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    ("gitlab runner token", ("gr1348941",), r"GR1348941[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    ("gitlab ci token", ("glcbt-",), r"glcbt-(?:[0-9a-fA-F]{2}_)?[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    ("slack token", ("xox",), r"(?i)xox[abposr]-(?:\d+-)+[a-z0-9]+", 0),
    ("slack webhook", ("hooks.slack.com",),
     r"(?i)https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+", 0),
    ("stripe live key", ("k_live_",), r"(?:r|s)k_live_[0-9a-zA-Z]{24,}", 0),
    ("sendgrid key", ("sg.",), r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}", 0),
    ("square oauth secret", ("sq0csp-",), r"sq0csp-[0-9A-Za-z\\\-_]{43}", 0),
    ("npm token", ("_authtoken",), r"(:_authToken=\s*)(?:npm_\S+|[A-Fa-f0-9-]{36})", 1),
    ("pypi token", ("pypi-",),
     r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{70,}", 0),
    ("openai key", ("t3blbkfj",), r"sk-[A-Za-z0-9_-]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", 0),
    ("mailchimp key", ("-us",), r"\b[0-9a-f]{32}-us[0-9]{1,2}\b", 0),
    ("discord bot token", (".",),
     r"\b[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}\b", 0),
    ("telegram bot token", (":",), r"\b\d{8,10}:[0-9A-Za-z_-]{35}\b", 0),
    ("twilio key", ("ac", "sk"), r"\b(?:AC|SK)[a-f0-9]{32}\b", 0),
    ("azure storage key", ("accountkey=",), r"(AccountKey=)[a-zA-Z0-9+/=]{88}", 1),
    ("artifactory token", ("akc",), r"\bAKC[a-zA-Z0-9]{10,}", 0),
    # --- peephole's own -----------------------------------------------------------------
    ("stripe test or restricted key", ("k_test_", "k_live_"),
     r"\b(?:sk|rk|pk)_(?:test|live)_[0-9a-zA-Z]{10,}", 0),
    ("github fine-grained token", ("github_pat_",), r"github_pat_[A-Za-z0-9_]{22,}", 0),
    ("google api key", ("aiza",), r"AIza[0-9A-Za-z_\-]{35}", 0),
    ("openai project key", ("sk-",), r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}", 0),
    ("anthropic key", ("sk-ant-",), r"\bsk-ant-[A-Za-z0-9_-]{20,}", 0),
    ("private key block", ("private key", "putty-user-key"),
     r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
     r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
     r"|PuTTY-User-Key-File-\d[\s\S]*?(?:Private-MAC: *\S+|\Z)", 0),
    ("json web token", ("eyj",), r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", 0),
    ("bearer or basic credentials", ("bearer", "basic"),
     r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}", 1),
    ("password in a URL", ("://",), r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", 1),
]  # fmt: skip
