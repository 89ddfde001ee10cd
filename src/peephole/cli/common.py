"""What every command shares: the client, ``--json`` output, the console, argument parsers.

The client and Rich are imported on first use, so ``peephole --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from peephole.client import Client

__all__ = [
    "Failure",
    "State",
    "console",
    "duration_option",
    "json_option",
    "json_text",
    "location_argument",
    "parse_duration",
    "parse_location",
    "parse_tags",
    "pass_state",
    "print_json",
]

F = TypeVar("F", bound=Callable[..., Any])

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
WIDTH = 100  # columns when the output is not a terminal, so output (and golden tests) is stable


class Failure(click.ClickException):
    """A command that could not do its job (exit 1), with a one-line message."""

    exit_code = 1


@dataclass
class State:
    """The root options, and the client made from them on first use."""

    url: str | None = None
    token: str | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            from peephole.client import Client

            self._client = Client(self.url, self.token)
            click.get_current_context().call_on_close(self._client.close)
        return self._client

    def full_probe_id(self, value: str | None) -> str | None:
        """``--probe`` takes any unique start of an id, like every ID argument; filters
        need the whole id (the id of a removed probe is used as given)."""
        if value is None:
            return None
        from peephole.client import NotFound

        try:
            return self.client().probe(value).id
        except NotFound as exc:
            if "ambiguous" in str(exc):
                raise
            return value


pass_state = click.make_pass_decorator(State, ensure=True)


def json_option(func: F) -> F:
    """``--json``: print the server's JSON instead of tables."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON (the server's shape) instead of a table.",
    )(func)


# JSON escapes the C0 controls itself; with non-ASCII kept readable, DEL, the C1 controls
# (0x9b starts an escape sequence on some terminals) and bidi overrides would pass raw.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def json_text(data: Any, indent: int | None = None) -> str:
    """JSON for a terminal: readable non-ASCII text, every control character escaped."""
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(data: Any) -> None:
    click.echo(json_text(data, indent=2))


def console() -> Console:
    """A console for tables: colour only on a terminal; when piped, ``COLUMNS`` wide if set,
    else a fixed width (so output, and golden tests, are stable)."""
    from rich.console import Console

    class Uncropped(Console):
        """Prints lines longer than the width instead of cropping them (a table widens
        rather than cut an id: see ``render._Table``)."""

        def print(self, *objects: Any, **options: Any) -> None:
            options.setdefault("crop", False)
            super().print(*objects, **options)

    return Uncropped(
        file=sys.stdout, width=output_width(), highlight=False, emoji=False, soft_wrap=False
    )


def output_width() -> int | None:
    """``None`` lets Rich measure a terminal (it honours ``COLUMNS`` too)."""
    if sys.stdout.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else WIDTH


def parse_location(value: str) -> tuple[str, int]:
    """``shop/cart.py:42`` -> ``("shop/cart.py", 42)``; anything else is a usage error."""
    file, sep, line = value.rpartition(":")
    if not sep or not file.strip():
        raise click.BadParameter(f"{value!r} is not FILE:LINE (for example shop/cart.py:42)")
    if not line.isdigit() or int(line) < 1:
        raise click.BadParameter(
            f"{value!r} has no line number after ':' (for example shop/cart.py:42)"
        )
    return file.strip(), int(line)


def parse_duration(value: str) -> float:
    """``30m``, ``90s``, ``2h``, ``1d``, ``1h30m`` or plain seconds -> seconds."""
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        matches = list(DURATION.finditer(text))
        if not matches or "".join(m.group(0) for m in matches) != text:
            raise click.BadParameter(
                f"{value!r} is not a duration (use s, m, h or d: 90s, 30m, 2h, 1d)"
            ) from None
        seconds = sum(float(m.group(1)) * UNITS[m.group(2)] for m in matches)
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} must be longer than zero")
    return seconds


def parse_tags(values: tuple[str, ...]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} must look like key=value")
        tags[key.strip()] = value.strip()
    return tags


def location_argument(func: F) -> F:
    def convert(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
        return parse_location(value)

    return click.argument("location", metavar="FILE:LINE", callback=convert)(func)


def duration_option(*names: str, help: str) -> Callable[[F], F]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        return None if value is None else parse_duration(value)

    return click.option(*names, metavar="DURATION", callback=convert, help=help)
