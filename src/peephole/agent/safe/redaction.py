"""Redaction: decide, inside the process, which names and strings must not leave it.

A name (a local, an object field, a dict key, a name an expression reads) is *secret* when its
normalised form (lower case, ``_`` and ``-`` removed) equals or contains one of the secret
names, or when one of its words (split at ``_``, ``-``, ``.``, spaces and camelCase) is one of
the short secret words that would match too much as a substring (``pin`` in ``shipping``,
``ssn`` in ``classname``, ``auth`` in ``author``). A name the configuration allows is never
secret. A string is masked where it matches a value pattern: card numbers that pass the Luhn
check, ``Bearer``/``Basic`` credentials, JWTs, passwords in URLs and ``key=value`` pairs,
private key blocks, AWS access key ids, and the configured regexes.
"""

from __future__ import annotations

import re
from typing import (
    TYPE_CHECKING,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Pattern,
    Tuple,
    Union,
)

if TYPE_CHECKING:
    from peephole.agent.config import AgentConfig
    from peephole.protocol import AgentPolicy

MASK = "[redacted]"

# Matched as substrings of the normalised name: "db_password", "X-Auth-Token", "csrftoken".
SUBSTRING_SECRET_NAMES: FrozenSet[str] = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "authorization",
        "cookie", "session", "csrf", "xsrf", "jwt", "privatekey", "creditcard", "cardnumber",
        "ccnumber", "accesskey", "secretkey", "clientsecret", "refreshtoken", "credential",
        "bearer", "signingkey", "encryptionkey",
    }
)  # fmt: skip
# Matched only as whole words of the name: "user_pin", "userSSN", "auth_header", not "shipping".
WORD_SECRET_NAMES: FrozenSet[str] = frozenset(
    {"auth", "pin", "ssn", "cvv", "cvc", "otp", "pw", "iban"}
)
DEFAULT_SECRET_NAMES: FrozenSet[str] = SUBSTRING_SECRET_NAMES | WORD_SECRET_NAMES

_NAME_CACHE_SIZE = 4096
_TEXT_CACHE_SIZE = 2048
_TEXT_CACHE_MAX_LEN = 256

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def normalise(name: str) -> str:
    """Lower case, without ``_`` and ``-``: ``X-Auth-Token`` -> ``xauthtoken``."""
    return name.lower().replace("_", "").replace("-", "")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    text = match.group(0)
    start = match.start()
    if start and match.string[start - 1] in "0123456789-":
        return text  # part of a longer number, an id or a date range, not a card
    digits = "".join(c for c in text if "0" <= c <= "9")
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return MASK
    return text


# Built-in value patterns: (words one of which the lower-cased text must contain, or None
# for "four digits in a row", regex, replacement). Python's regex engine is slow to scan for
# case-insensitive alternations, substring tests are fast, so each regex runs only on text
# that passed its cheap test. Replacements keep the part that says what was there
# ("Bearer [redacted]", "postgres://app:[redacted]@db") so a person can still debug.
_Replacement = Union[str, Callable[["re.Match[str]"], str]]
_BUILTIN_PATTERNS: List[Tuple[Optional[Tuple[str, ...]], str, _Replacement]] = [
    (None, r"[0-9](?:[ -]?[0-9]){12,18}(?![0-9])", _mask_card),
    (("bearer", "basic"), r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}", r"\1\2" + MASK),
    (("eyj",), r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", MASK),
    (("://",), r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@", r"\1" + MASK + "@"),
    (
        ("pass", "pwd", "secret", "token", "key"),
        r"(?i)(pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key)"
        r"([\"']?\s*[=:]\s*[\"']?)(?!\[redacted\])[^\s&;,\"']+",
        r"\1\2" + MASK,
    ),
    (
        ("-----begin",),
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        MASK,
    ),
    (("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", MASK),
]
_COMPILED_BUILTINS = [(words, re.compile(p), r) for words, p, r in _BUILTIN_PATTERNS]
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_MIN_MATCH = 5  # no built-in pattern matches a shorter string ("pwd=x")


class Redactor:
    """Names and values that must not leave the process, for one policy.

    Immutable once built (the caches aside), so a new policy means a new Redactor swapped in
    whole; the caches are plain dicts whose single operations are atomic under the GIL.
    """

    def __init__(
        self,
        extra_names: Iterable[str] = (),
        allow_names: Iterable[str] = (),
        patterns: Iterable[str] = (),
    ) -> None:
        self.allow_names: FrozenSet[str] = frozenset(normalise(n) for n in allow_names if n)
        extra = {normalise(n) for n in extra_names if n and normalise(n)}
        self.substring_names: FrozenSet[str] = frozenset(
            (SUBSTRING_SECRET_NAMES | extra) - self.allow_names
        )
        self.word_names: FrozenSet[str] = WORD_SECRET_NAMES - self.allow_names
        alternatives = "|".join(sorted(map(re.escape, self.substring_names), key=len))
        self._substring = re.compile(alternatives) if alternatives else None
        self.errors: List[str] = []  # configured patterns that could not be compiled
        self.patterns: List[Pattern[str]] = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern))
            except (re.error, TypeError, ValueError, RecursionError) as exc:
                self.errors.append(f"redaction pattern {pattern!r} is not a valid regex: {exc}")
        self._names: Dict[str, bool] = {}
        self._texts: Dict[str, Optional[str]] = {}

    def is_secret_name(self, name: str) -> bool:
        """True when values under this name must be redacted (cached)."""
        cached = self._names.get(name)
        if cached is not None:
            return cached
        secret = self._check_name(name)
        if len(self._names) >= _NAME_CACHE_SIZE:
            self._names.clear()
        self._names[name] = secret
        return secret

    def _check_name(self, name: str) -> bool:
        norm = normalise(name)
        if not norm or norm in self.allow_names:
            return False
        if self._substring is not None and self._substring.search(norm):
            return True
        if norm in self.word_names:
            return True
        return any(word.lower() in self.word_names for word in _WORDS.findall(name))

    def redact_text(self, text: str) -> Optional[str]:
        """A masked copy of ``text`` if any value pattern matched, else None."""
        if len(text) > _TEXT_CACHE_MAX_LEN:
            return self._redact(text)
        try:
            return self._texts[text]
        except KeyError:
            pass
        result = self._redact(text)
        if len(self._texts) >= _TEXT_CACHE_SIZE:
            self._texts.clear()
        self._texts[text] = result
        return result

    def _redact(self, text: str) -> Optional[str]:
        masked = text
        if len(text) >= _MIN_MATCH:
            lowered = text.lower()
            for words, regex, replacement in _COMPILED_BUILTINS:
                if words is None:
                    if _FOUR_DIGITS.search(text) is None:
                        continue
                else:
                    for word in words:
                        if word in lowered:
                            break
                    else:
                        continue
                masked = regex.sub(replacement, masked)
        for regex in self.patterns:
            masked = regex.sub(MASK, masked)
        return None if masked == text else masked

    @classmethod
    def from_policy(cls, config: AgentConfig, policy: Optional[AgentPolicy]) -> Redactor:
        """The agent's settings plus the server's policy (which only adds)."""
        names = list(config.redact_names)
        allow = list(config.allow_names)
        patterns = list(config.redact_patterns)
        if policy is not None:
            names += policy.redact_names
            allow += policy.allow_names
            patterns += policy.redact_patterns
        return cls(extra_names=names, allow_names=allow, patterns=patterns)
