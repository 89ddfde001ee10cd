"""Where the client finds its server and token.

Precedence: explicit arguments, then ``PEEPHOLE_URL`` / ``PEEPHOLE_TOKEN``, then the file
``peephole login`` writes (``$XDG_CONFIG_HOME/peephole/config.json``, by default
``~/.config/peephole/config.json``), then the default URL. The file holds a token, so it is
written readable by its owner only (0600), and its token is sent only to the server it was
saved for.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from peephole.client.errors import PeepholeError

__all__ = [
    "DEFAULT_URL",
    "TOKEN_VARIABLE",
    "Settings",
    "config_path",
    "load_file",
    "resolve",
    "save",
]

DEFAULT_URL = "http://127.0.0.1:7777"
URL_VARIABLE = "PEEPHOLE_URL"
TOKEN_VARIABLE = "PEEPHOLE_TOKEN"


@dataclass(frozen=True)
class Settings:
    """The resolved server URL and token, and where each came from (for messages)."""

    url: str
    token: str | None
    url_source: str = "default"
    token_source: str = "none"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "peephole" / "config.json"


def load_file(path: Path) -> dict[str, str]:
    """Read the saved settings; a missing file is empty, a broken one is an error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise PeepholeError(f"cannot read {path}: {exc}; fix or delete it") from None
    if not isinstance(data, dict):
        raise PeepholeError(f"{path} must hold a JSON object; fix or delete it")
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def save(url: str, token: str | None, path: Path | None = None) -> Path:
    """Write the settings atomically with mode 0600, creating the directory (0700)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"url": url} if token is None else {"url": url, "token": token}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)  # mkstemp already does; be explicit about the contract
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def resolve(
    url: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Pick the URL and token by precedence: arguments, environment, config file, default."""
    environ = os.environ if environ is None else environ
    saved: dict[str, str] | None = None

    def from_file(key: str) -> str | None:
        nonlocal saved
        if saved is None:
            saved = load_file(config_path(environ))
        return saved.get(key) or None

    path = str(config_path(environ))
    if url:
        url_value, url_source = url, "argument"
    elif environ.get(URL_VARIABLE):
        url_value, url_source = environ[URL_VARIABLE], URL_VARIABLE
    elif (found := from_file("url")) is not None:
        url_value, url_source = found, path
    else:
        url_value, url_source = DEFAULT_URL, "default"
    if token:
        token_value, token_source = token, "argument"
    elif environ.get(TOKEN_VARIABLE):
        token_value, token_source = environ[TOKEN_VARIABLE], TOKEN_VARIABLE
    elif (found := from_file("token")) is not None and _same_server(from_file("url"), url_value):
        token_value, token_source = found, path
    else:
        token_value, token_source = None, "none"
    return Settings(url_value.rstrip("/"), token_value, url_source, token_source)


def _same_server(saved_url: str | None, url: str) -> bool:
    return saved_url is None or saved_url.rstrip("/") == url.rstrip("/")
