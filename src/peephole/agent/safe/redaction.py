"""Redaction: decide, inside the process, which names, values and collections must not leave it.

Three mechanisms, applied by capture (and by expressions, which import this module's public
functions) before anything leaves the process:

- **Names.** A name (a local, an object field, a dict key of ``str`` or ``bytes``, a name an
  expression reads) is *secret* when its normalised form (lower case, ``_ - .`` and spaces
  removed) contains one of :data:`SUBSTRING_SECRET_NAMES`, when one of its words is one of
  :data:`WORD_SECRET_NAMES` (too short to match as substrings: ``pin`` in ``shipping``), or
  when it is a WSGI/CGI header variable (``HTTP_COOKIE``, ``HTTP_X_API_KEY``). A name the
  configuration allows is never secret. Only values that can hold a secret are hidden under a
  secret name: text, bytes, containers and objects; never ``bool`` or ``None``, and numbers
  only under the names of numeric secrets (``pin``, ``cvv``, ``card_number``...).
- **Values.** Text is masked where it matches a secret format (:mod:`secret_formats`: token
  formats derived from detect-secrets, PEM blocks, JWTs, URL passwords), a ``key=value`` pair
  whose key says secret (the whole value, spaces included), a card number that passes the
  Luhn check, or a configured regex. :func:`contains_secret` and :func:`mask_text` are the
  public entry points for the whole-text checks.
- **Collections.** Header and cookie collections (Starlette, Werkzeug, Django, requests, httpx,
  ``http.cookies``, ``http.cookiejar``, ``http.client``), lists of name/value pairs whose names
  look like HTTP headers (ASGI's ``(bytes, bytes)`` pairs) and the process environment
  (``os.environ`` and its bytes-keyed ``_data``) are secret by default: their names are
  shown, every text value in them is hidden. Recognising them reads only types and exact
  builtins, never the application's code.
"""

from __future__ import annotations

import os
import re
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Pattern,
    Sequence,
    Tuple,
    Union,
)

from peephole.agent.safe.access import NoneType, type_info, type_mro
from peephole.agent.safe.secret_formats import TOKEN_FORMATS

if TYPE_CHECKING:
    from peephole.agent.config import AgentConfig
    from peephole.protocol import AgentPolicy

__all__ = [
    "DEFAULT_SECRET_NAMES",
    "MASK",
    "NUMERIC_SECRET_NAMES",
    "SECRET_COLLECTION_TYPES",
    "SUBSTRING_SECRET_NAMES",
    "WORD_SECRET_NAMES",
    "Redactor",
    "contains_secret",
    "default_redactor",
    "mask_text",
    "masked_tags",
    "normalise",
]

MASK = "[redacted]"

# Matched as substrings of the normalised name: "db_password", "X-Auth-Token", "csrftoken".
SUBSTRING_SECRET_NAMES: FrozenSet[str] = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "authorization",
        "cookie", "session", "csrf", "xsrf", "jwt", "privatekey", "privkey", "creditcard",
        "cardnumber", "ccnumber", "accesskey", "secretkey", "clientsecret", "refreshtoken",
        "credential", "bearer", "signingkey", "encryptionkey", "masterkey", "hmackey",
        "stripekey", "licensekey", "sshkey", "authkey", "webhookkey", "decryptionkey",
        "connectionstring", "connstr", "sessionkey", "pinnumber", "securitycode",
    }
)  # fmt: skip
# Matched only as whole words of the name: "user_pin", "userSSN", "auth_header", not "shipping".
WORD_SECRET_NAMES: FrozenSet[str] = frozenset(
    {"auth", "pin", "ssn", "cvv", "cvc", "cvv2", "otp", "pw", "iban", "dsn", "hmac", "salt",
     "totp", "mfa"}
)  # fmt: skip
DEFAULT_SECRET_NAMES: FrozenSet[str] = SUBSTRING_SECRET_NAMES | WORD_SECRET_NAMES
# Secret names whose value is commonly a number: an int under them is hidden too.
NUMERIC_SECRET_NAMES: FrozenSet[str] = frozenset(
    {"pin", "cvv", "cvc", "cvv2", "ssn", "otp", "totp", "iban", "creditcard", "cardnumber",
     "ccnumber", "pinnumber", "securitycode"}
)  # fmt: skip

# Classes (module.QualName, matched anywhere in a value's MRO) whose values are all secret.
SECRET_COLLECTION_TYPES: FrozenSet[str] = frozenset(
    {
        "starlette.datastructures.Headers", "starlette.datastructures.MutableHeaders",
        "werkzeug.datastructures.headers.Headers", "werkzeug.datastructures.Headers",
        "werkzeug.datastructures.EnvironHeaders",
        "django.http.request.HttpHeaders", "django.http.response.ResponseHeaders",
        "requests.structures.CaseInsensitiveDict", "requests.cookies.RequestsCookieJar",
        "httpx.Headers", "httpx.Cookies", "httpx._models.Headers", "httpx._models.Cookies",
        "http.cookies.BaseCookie", "http.cookies.Morsel", "http.cookiejar.CookieJar",
        "http.client.HTTPMessage", "multidict._multidict.CIMultiDict",
        "multidict._multidict.CIMultiDictProxy", "aiohttp.cookiejar.CookieJar", "os._Environ",
    }
)  # fmt: skip

# Header names that mark a list of pairs as headers (any other ``x-`` name does too).
_HEADER_NAMES: FrozenSet[str] = frozenset(
    {
        "host", "user-agent", "accept", "accept-encoding", "accept-language", "content-type",
        "content-length", "content-encoding", "cookie", "set-cookie", "authorization",
        "proxy-authorization", "connection", "referer", "origin", "cache-control", "pragma",
        "if-none-match", "if-modified-since", "etag", "location", "server", "date", "vary",
        "www-authenticate", "upgrade", "sec-websocket-key", "forwarded", "via", "dnt",
    }
)  # fmt: skip
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
_HEADER_LIST_CHECKED = 8  # pairs a list is judged by (a header list has a known one early)

_NAME_CACHE_SIZE = 4096
_TEXT_CACHE_SIZE = 2048
_TEXT_CACHE_MAX_LEN = 256
_TYPE_CACHE_SIZE = 1024

_WORDS = re.compile(r"[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*(?![a-z])|[0-9]+")
_SEPARATORS = str.maketrans("", "", "_-. ")
_SHOWN_SCALARS = frozenset({id(bool), id(NoneType)})
_NUMBERS = frozenset({id(int), id(float)})


def normalise(name: Union[str, bytes]) -> str:
    """Lower case, without ``_ - .`` and spaces: ``X-Auth-Token`` -> ``xauthtoken``; bytes
    are read as Latin-1 so every byte maps to one character."""
    if type(name) is bytes:
        name = name.decode("latin-1")
    return str(name).lower().translate(_SEPARATORS)


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
    before = match.string[start - 2 : start] if start else ""
    if before[-1:].isdigit() or (before[-1:] in ("-", ".") and before[:1].isdigit()):
        return text  # part of a longer number, an id or a date range, not a card
    digits = "".join(c for c in text if "0" <= c <= "9")
    if 13 <= len(digits) <= 19 and _luhn_ok(digits):
        return MASK
    return text


# A key, a separator, then the value: quoted (up to the closing quote) or bare (words up to
# ``&;,`` or the next ``name=``), so "password=correct horse battery" is masked whole and
# "pw=x user=bob" keeps "user=bob". The key is any name (at most 64 characters, starting at
# a name's start); whether it says secret is decided on the key alone (:data:`_SECRET_KEY`),
# so no part of the regex can backtrack more than the key's length at each name.
_KEY = (
    r"(?i)(?<![a-z0-9_.-])([a-z0-9_.-]{1,64})"
    r"(\"?'?\s*[=:]\s*(?:[bru](?=[\"']))?)"
)
_KEY_VALUE = _KEY + (
    r"(?:(\"|')(?!\[redacted\])[^\"'\r\n]+(?=\3)"
    r"|(?![\"']|\[redacted\])[^\s&;,\"']+(?:[ \t]+(?![^\s=:&;,\"']+\s*[=:])[^\s&;,\"'=:]+)*)"
)
# A secret word that starts one of the key's segments and ends one: "db_password",
# "client.secret", "pw"; not "passport" or "author".
_SECRET_KEY = re.compile(
    r"(?i)(?<![a-z0-9])(?:pass(?:word|wd|phrase)?|pwd|pw|secret|token|credentials?|auth"
    r"|(?:api|access|private)[_-]?key|session[_-]?id)(?![a-z0-9])"
)


_KEY_RE = re.compile(_KEY)
_KEY_VALUE_RE = re.compile(_KEY_VALUE)


def _mask_key_value(match: re.Match[str]) -> str:
    key, separator, quote = match.group(1), match.group(2), match.group(3) or ""
    if _SECRET_KEY.search(key) is not None:
        return f"{key}{separator}{quote}{MASK}"
    whole = match.group(0)
    start = match.end(2) - match.start()
    value = whole[start:]
    if "=" in value or ":" in value:  # "put: password=...": a key inside the value
        return whole[:start] + _mask_key_values(value)
    return whole


def _mask_key_values(text: str) -> str:
    """``text`` with the value of every secret key masked, every key looked at once (the scan
    moves past a plain key's separator, not past its value, so the work stays linear)."""
    parts: List[str] = []
    position = 0
    while True:
        key = _KEY_RE.search(text, position)
        if key is None:
            break
        whole = None
        if _SECRET_KEY.search(key.group(1)) is not None:
            whole = _KEY_VALUE_RE.match(text, key.start())
        if whole is None:
            parts.append(text[position : key.end()])
            position = key.end()
            continue
        quote = whole.group(3) or ""
        parts.append(f"{text[position : key.start()]}{whole.group(1)}{whole.group(2)}{quote}{MASK}")
        position = whole.end()
    if not parts:
        return text
    parts.append(text[position:])
    return "".join(parts)


_Replacement = Union[str, Callable[["re.Match[str]"], str]]


def _kept(groups: int) -> str:
    return "".join(f"\\{i}" for i in range(1, groups + 1)) + MASK


_Pattern = Tuple[Optional[Tuple[str, ...]], Pattern[str], _Replacement]
# Token formats that need no run of 16 token characters (``[A-Za-z0-9_-]``) to match.
_SHORT_FORMATS = frozenset(
    {"npm token", "private key block", "bearer or basic credentials", "password in a URL"}
)


def _builtin_patterns() -> Tuple[List[_Pattern], List[_Pattern]]:
    """Patterns as (markers one of which the lower-cased text must contain, or None for
    "four digits in a row", regex, replacement): those every text is checked against, and
    the token formats, checked only in a text with a run of 16 token characters (every
    such token has one: most text has none, and one search rules them all out)."""
    always: List[_Pattern] = [
        (None, re.compile(r"(?<![0-9])[0-9](?:(?:[ .-]| {2})?[0-9]){12,18}(?![0-9])"), _mask_card),
    ]
    long_tokens: List[_Pattern] = []
    for name, markers, regex, keep in TOKEN_FORMATS:
        group = always if name in _SHORT_FORMATS else long_tokens
        group.append((markers, re.compile(regex), _kept(keep)))
    key_words = ("pass", "pw", "secret", "token", "key", "credential", "session", "auth")
    always.append((key_words, _KEY_VALUE_RE, _mask_key_value))
    return always, long_tokens


_ALWAYS, _LONG_TOKENS = _builtin_patterns()
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-]{16}")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_MIN_MATCH = 4  # no built-in pattern matches a shorter string ("pw=x")


def _environment_ids() -> FrozenSet[int]:
    """Ids of the process environment's own mappings (``os.environ._data``), read without
    running any code: ``os.environ`` is the stdlib's ``_Environ`` unless replaced."""
    environ = os.environ
    if type(environ) is not getattr(os, "_Environ", None):
        return frozenset()
    data = vars(environ).get("_data")
    return frozenset({id(data)}) if type(data) is dict else frozenset()


class Redactor:
    """Names, values and collections that must not leave the process, for one policy.

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
        # Numbers are hidden under numeric secrets' names and under every configured name.
        numeric = "|".join(
            sorted(map(re.escape, (NUMERIC_SECRET_NAMES | extra) - self.allow_names), key=len)
        )
        self._numeric = re.compile(numeric) if numeric else None
        self.errors: List[str] = []  # configured patterns that could not be compiled
        self.patterns: List[Pattern[str]] = []
        for pattern in patterns:
            try:
                self.patterns.append(re.compile(pattern))
            except (re.error, TypeError, ValueError, RecursionError) as exc:
                self.errors.append(f"redaction pattern {pattern!r} is not a valid regex: {exc}")
        self.secret_ids: FrozenSet[int] = _environment_ids()
        self._names: Dict[Union[str, bytes], bool] = {}
        self._texts: Dict[str, Optional[str]] = {}
        self._types: Dict[int, Tuple[type, bool]] = {}

    # --- names ----------------------------------------------------------------------------

    def is_secret_name(self, name: Union[str, bytes]) -> bool:
        """True when values under this name (``str`` or ``bytes``) must be hidden (cached)."""
        cached = self._names.get(name)
        if cached is not None:
            return cached
        secret = self._check_name(name)
        if len(self._names) >= _NAME_CACHE_SIZE:
            self._names.clear()
        self._names[name] = secret
        return secret

    def _check_name(self, name: Union[str, bytes]) -> bool:
        text = name.decode("latin-1") if type(name) is bytes else str(name)
        norm = normalise(text)
        if not norm or norm in self.allow_names:
            return False
        if text.startswith("HTTP_") and len(text) > 5:
            return True  # a request header in a WSGI/CGI environ or Django's META
        if self._substring is not None and self._substring.search(norm):
            return True
        if norm in self.word_names:
            return True
        return any(word.lower() in self.word_names for word in _WORDS.findall(text))

    def hides(self, name: Union[str, bytes], value: object) -> bool:
        """Whether ``value`` under the secret name ``name`` is hidden: text, bytes, containers
        and objects are; ``bool`` and ``None`` never; numbers under numeric secret names and
        under the names configured in ``redact_names`` or the policy."""
        cls_id = id(type(value))
        if cls_id in _SHOWN_SCALARS:
            return False
        if cls_id in _NUMBERS:
            return self._numeric is not None and self._numeric.search(normalise(name)) is not None
        return True

    # --- values ---------------------------------------------------------------------------

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

    def contains_secret(self, text: Union[str, bytes]) -> bool:
        """Whether ``text`` holds a secret-shaped token (for taint and whole-text checks)."""
        if type(text) is bytes:
            text = text.decode("latin-1")
        return self.redact_text(str(text)) is not None

    def mask(self, text: str) -> str:
        """``text`` with every secret-shaped token masked (the text itself if none)."""
        masked = self.redact_text(text)
        return text if masked is None else masked

    def _redact(self, text: str) -> Optional[str]:
        masked = text
        if len(text) >= _MIN_MATCH:
            lowered = text.lower()
            masked = _apply(_ALWAYS, text, lowered, masked)
            if _LONG_RUN.search(text) is not None:
                masked = _apply(_LONG_TOKENS, text, lowered, masked)
        for regex in self.patterns:
            masked = regex.sub(MASK, masked)
        return None if masked == text else masked

    # --- collections ----------------------------------------------------------------------

    def is_secret_collection(self, value: object) -> bool:
        """Header and cookie collections and the process environment: names shown, text
        values hidden. Decided by the value's type (cached per class) or its identity."""
        if id(value) in self.secret_ids:
            return True
        cls = type(value)
        known = self._types.get(id(cls))
        if known is not None and known[0] is cls:
            return known[1]
        secret = _secret_collection_type(cls)
        if len(self._types) >= _TYPE_CACHE_SIZE:
            self._types.clear()
        self._types[id(cls)] = (cls, secret)
        return secret

    def is_header_list(self, items: Sequence[Any]) -> bool:
        """A list of ``(name, value)`` pairs whose names look like HTTP headers (ASGI's
        ``[(b"cookie", b"...")]``, WSGI's ``start_response`` headers): the first few pairs
        have text values and header-token names, one of them a known header, an ``x-``
        header or a secret name."""
        known = False
        for item in items[:_HEADER_LIST_CHECKED]:
            cls = type(item)
            if (cls is not tuple and cls is not list) or len(item) != 2:
                return False
            name, value = item
            if type(value) is not str and type(value) is not bytes:
                return False  # a header's value is text
            if type(name) is bytes:
                name = name.decode("latin-1")
            elif type(name) is not str:
                return False
            if _HEADER_TOKEN.fullmatch(name) is None:
                return False
            if not known:
                lowered = name.lower()
                known = (
                    lowered in _HEADER_NAMES
                    or lowered.startswith("x-")
                    or self.is_secret_name(name)
                )
        return known

    def is_secret_container(self, value: Any) -> bool:
        """A value whose text is secret as a whole, for code that shows values without
        walking them name by name (a template's text): a secret collection, a list of header
        pairs, or a ``(secret name, value)`` pair."""
        if self.is_secret_collection(value):
            return True
        cls = type(value)
        if (cls is not list and cls is not tuple) or not value:
            return False
        first = value[0]
        if type(first) is str or type(first) is bytes:
            return len(value) == 2 and self.is_secret_name(first) and self.hides(first, value[1])
        if type(first) is tuple or type(first) is list:
            return self.is_header_list(value[:100])
        return False

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


def _apply(patterns: List[_Pattern], text: str, lowered: str, masked: str) -> str:
    """``masked`` with each pattern whose cheap test ``text`` passes applied."""
    for words, regex, replacement in patterns:
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
    return masked


def _secret_collection_type(cls: type) -> bool:
    try:
        mro = type_mro(cls) or (cls,)
    except Exception:
        return False
    return any(type_info(klass).name in SECRET_COLLECTION_TYPES for klass in mro)


_DEFAULT: List[Redactor] = []


def default_redactor() -> Redactor:
    """The built-in policy alone (no configured names or patterns), made once."""
    if not _DEFAULT:
        _DEFAULT.append(Redactor())
    return _DEFAULT[0]


def contains_secret(text: Union[str, bytes], redactor: Optional[Redactor] = None) -> bool:
    """Whether ``text`` holds a secret-shaped token under ``redactor`` (the built-in policy
    when None): the test expression taint and whole-text masking start from."""
    return (redactor or default_redactor()).contains_secret(text)


def masked_tags(tags: Dict[str, str], redactor: Optional[Redactor] = None) -> Dict[str, str]:
    """Instance tags as they may leave the process (the instance list shows them to every
    viewer): a secret name's value hidden, secret-shaped text masked."""
    r = redactor or default_redactor()
    return {
        key: MASK if r.is_secret_name(key) else r.mask(str(value)) for key, value in tags.items()
    }


def mask_text(text: str, redactor: Optional[Redactor] = None) -> str:
    """``text`` with every secret-shaped token masked, under ``redactor`` (or the built-in
    policy): for a whole rendered log line or exception message."""
    return (redactor or default_redactor()).mask(text)
