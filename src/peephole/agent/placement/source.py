"""Source view: which loaded files the agent shows a person, and what of their text.

The source view serves the deployed code to anyone who may view the service, so it follows
the same rule as capture: nothing secret leaves the process.

- Only files of loaded modules are listed or served. A path that names no loaded module gets
  the same answer whether or not a file exists there, so the view cannot probe the host's
  disk (``/etc/app/secrets.py``).
- The agent's own modules and its runtime dependencies (``websockets``, ``bytecode``) are
  never listed nor served; the application's files come first, then its libraries.
- Files matching the deny-list (:data:`DEFAULT_SOURCE_DENY` plus the agent's
  ``source_deny`` setting and the service's policy) are neither listed nor served: settings
  modules and the like hold hard-coded secrets.
- Served text has its literals masked: strings and numbers that hold a secret-shaped token
  (value masking), and strings assigned to or keyed by a secret name
  (``SECRET_KEY = "..."``, ``{"PASSWORD": "..."}``). Line numbers never move.
- An admin can turn the view off per service (the policy's ``serve_source``).
"""

from __future__ import annotations

import fnmatch
import io
import token
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from peephole.agent.code_kind import APP, LIBRARY, code_kind
from peephole.agent.placement.paths import (
    check_kind,
    loaded_files,
    modules_of,
    normalize_path,
    path_matches,
    real_path,
)
from peephole.agent.placement.statements import source_lines, source_map
from peephole.agent.safe.redaction import MASK, Redactor

if TYPE_CHECKING:
    from peephole.agent.config import AgentConfig
    from peephole.protocol import AgentPolicy

__all__ = ["DEFAULT_SOURCE_DENY", "SourcePolicy", "list_files", "mask_source", "serve"]

# Matched (case-insensitively) against a file's base name and its whole path.
DEFAULT_SOURCE_DENY: Tuple[str, ...] = (
    "*settings*.py", "*secret*", "*credential*", ".env", ".env.*", "*.env", "*dotenv*",
)  # fmt: skip
# Top-level packages of the agent's runtime dependencies: never listed nor served.
AGENT_DEPENDENCIES = frozenset({"websockets", "bytecode", "_distutils_hack"})
_OWN_PACKAGE = "peephole"
_OWN_EXCEPTIONS = ("peephole.demo",)  # the demo shop ships inside peephole but is an app
NOT_SERVED = "no loaded module of this service matches {path}"
TURNED_OFF = "the source view is turned off for this service"
DENIED = "{path} is not served: it matches the source deny-list ({pattern})"


@dataclass(frozen=True)
class SourcePolicy:
    """Whether the source view is on, and which files it never serves."""

    enabled: bool = True
    deny: Tuple[str, ...] = DEFAULT_SOURCE_DENY

    @classmethod
    def from_settings(cls, config: AgentConfig, policy: Optional[AgentPolicy]) -> SourcePolicy:
        """The agent's settings plus the server's policy: either can turn it off or deny."""
        enabled = bool(getattr(config, "serve_source", True))
        deny = list(DEFAULT_SOURCE_DENY) + list(getattr(config, "source_deny", ()))
        if policy is not None:
            enabled = enabled and bool(getattr(policy, "serve_source", True))
            deny += list(getattr(policy, "source_deny", ()))
        return cls(enabled=enabled, deny=tuple(p for p in deny if p))

    def denied_by(self, filename: str) -> Optional[str]:
        """The deny-list pattern ``filename`` matches, if any."""
        path = normalize_path(filename).lower()
        base = path.rsplit("/", 1)[-1]
        for pattern in self.deny:
            lowered = pattern.lower()
            if fnmatch.fnmatchcase(base, lowered) or fnmatch.fnmatchcase(path, lowered):
                return pattern
        return None


def _is_agent_module(module: str) -> bool:
    top = module.split(".", 1)[0]
    if top in AGENT_DEPENDENCIES:
        return True
    if top != _OWN_PACKAGE:
        return False
    return not any(module == e or module.startswith(e + ".") for e in _OWN_EXCEPTIONS)


def _servable() -> Dict[str, Tuple[str, str]]:
    """``{filename: (module, kind)}`` of every loaded file the view may show: the
    application's and its libraries' (:func:`code_kind`), not the agent's nor its
    dependencies' (by module name: they are installed like the application's libraries)."""
    found: Dict[str, Tuple[str, str]] = {}
    for filename, module in loaded_files().items():
        kind = code_kind(filename)
        if kind in (APP, LIBRARY) and not _is_agent_module(module):
            found[filename] = (module, kind)
    return found


def list_files(policy: SourcePolicy) -> List[str]:
    """The files a person may browse: the application's first, then its libraries."""
    if not policy.enabled:
        return []
    app: List[str] = []
    libraries: List[str] = []
    for filename, (_, kind) in _servable().items():
        if policy.denied_by(filename) is None:
            (app if kind == APP else libraries).append(filename)
    return sorted(app) + sorted(libraries)


def serve(path: str, policy: SourcePolicy, redactor: Redactor) -> Dict[str, object]:
    """``{"path", "text", "lines"}`` of the loaded file ``path`` names, or ``{"path",
    "error"}``; the error never depends on what exists on disk outside loaded modules."""
    if not policy.enabled:
        return {"path": path, "error": TURNED_OFF}
    try:
        check_kind(normalize_path(path))
    except Exception as exc:
        return {"path": path, "error": str(exc)}
    found = _match(path)
    if not found:
        return {"path": path, "error": NOT_SERVED.format(path=path)}
    if len(found) > 1:
        return {
            "path": path,
            "error": f"{path} is ambiguous: it matches {len(found)} loaded "
            f"files ({', '.join(sorted(found))}); give more of the path",
        }
    filename = found[0]
    pattern = policy.denied_by(filename)
    if pattern is not None:
        return {"path": filename, "error": DENIED.format(path=filename, pattern=pattern)}
    modules = modules_of([filename])
    namespace = vars(modules[0]) if modules else None
    text = "".join(source_lines(filename, namespace))
    if not text:
        return {"path": filename, "error": f"the source of {filename} cannot be read"}
    source = source_map(filename, namespace)
    return {
        "path": filename,
        "text": mask_source(text, redactor),
        "lines": source.probe_lines() if source else [],
    }


def _match(path: str) -> List[str]:
    """The servable loaded files ``path`` names (one per real file)."""
    wanted = normalize_path(path)
    found: Dict[str, str] = {}
    for filename in _servable():
        if path_matches(wanted, filename):
            found.setdefault(real_path(filename), filename)
    return list(found.values())


# --- masking literals ----------------------------------------------------------------------

_LITERALS = {token.STRING, token.NUMBER}
_FSTRING_MIDDLE = getattr(token, "FSTRING_MIDDLE", None)  # 3.12+: f-string text parts
if _FSTRING_MIDDLE is not None:
    _LITERALS.add(_FSTRING_MIDDLE)
_RESETS = {token.NEWLINE, token.NL, token.ENDMARKER}


def mask_source(text: str, redactor: Redactor) -> str:
    """``text`` with secret literals masked, every line kept at its number."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        return "".join(redactor.mask(line) for line in _lines(text))
    lines = _lines(text)
    replacements: List[Tuple[Tuple[int, int], Tuple[int, int], str]] = []
    secret_name: Optional[str] = None  # the secret name the next literals are assigned to
    last_name: Optional[str] = None
    for tok in tokens:
        kind, string = tok.type, tok.string
        if kind in _RESETS or (kind == token.OP and string in ",;"):
            secret_name, last_name = None, None
        elif kind == token.OP and string in ("=", ":", "+=", ":="):
            if last_name is not None and redactor.is_secret_name(last_name):
                secret_name = last_name
        elif kind == token.NAME:
            last_name = string
        elif kind in _LITERALS:
            masked = _masked_literal(string, kind, secret_name, redactor)
            if masked is not None:
                replacements.append((tok.start, tok.end, masked))
            if kind == token.STRING:
                last_name = _string_value(string)
    return _apply(lines, replacements) if replacements else text


def _lines(text: str) -> List[str]:
    """Lines as the tokenizer and linecache count them: ended by ``\\n`` only (``splitlines``
    also breaks at form feeds and other separators, which would shift every row after)."""
    return io.StringIO(text).readlines()


def _masked_literal(
    string: str, kind: int, secret_name: Optional[str], redactor: Redactor
) -> Optional[str]:
    """The masked text of a literal token, or None to keep it: under a secret name every
    string (and a number under a numeric secret's name), elsewhere what value masking finds."""
    if secret_name is not None:
        if kind != token.NUMBER:
            prefix, quote = _quotes(string)
            return f"{prefix}{quote}{MASK}{quote}" if kind == token.STRING and quote else MASK
        if redactor.hides(secret_name, 0):
            return MASK
    return redactor.redact_text(string)


def _quotes(string: str) -> Tuple[str, str]:
    """The prefix (``rb``, ``f``...) and the quote of a string literal."""
    index = 0
    while index < len(string) and string[index] not in "'\"":
        index += 1
    rest = string[index:]
    for quote in ('"""', "'''", '"', "'"):
        if rest.startswith(quote):
            return string[:index], quote
    return string[:index], ""


def _string_value(string: str) -> Optional[str]:
    """The text of a plain string literal used as a key (``"PASSWORD"``), else None."""
    prefix, quote = _quotes(string)
    if not quote or "f" in prefix.lower():
        return None
    return string[len(prefix) + len(quote) : len(string) - len(quote)]


def _apply(
    lines: List[str], replacements: List[Tuple[Tuple[int, int], Tuple[int, int], str]]
) -> str:
    """Replace token spans (1-based rows, 0-based columns), last first; a masked span keeps
    as many line breaks as it had, so every later line keeps its number."""
    for (start_row, start_col), (end_row, end_col), masked in reversed(replacements):
        first = lines[start_row - 1]
        last = lines[end_row - 1]
        breaks = max(0, end_row - start_row - masked.count("\n"))
        joined = first[:start_col] + masked + "\n" * breaks + last[end_col:]
        lines[start_row - 1 : end_row] = _lines(joined) or [""]
    return "".join(lines)
