"""The ``peephole`` entry point: the root command, its groups, and exit codes.

Exit codes: 0 success, 1 failure (the server said no, or could not be reached), 2 usage
(a bad argument or a missing flag). Every error is one line on stderr saying what to do.
"""

from __future__ import annotations

import re
import sys
from typing import Any, NoReturn

import click

from peephole import __version__
from peephole.cli import (
    add,
    admin,
    events,
    exceptions,
    launchers,
    login,
    probes,
    services,
    snapshots,
    source,
)
from peephole.cli.common import State

__all__ = ["cli", "explain", "run"]

HINTS = {
    "probe": "list them with `peephole probes list`",
    "event": "list them with `peephole snapshots list` or `peephole events tail`",
    "exception": "list them with `peephole exceptions list`",
    "service": "list them with `peephole services`",
}
# The server's field names, as the flags and arguments a person typed them.
FLAGS = {
    "hit_limit": "--hits",
    "expire_seconds": "--expire",
    "rate": "--rate",
    "condition": "--condition",
    "watches": "--watch",
    "template": "TEMPLATE",
    "level": "--level",
    "logger": "--logger",
    "file": "FILE",
    "line": "LINE",
    "limits": "--limits",
    "name": "NAME",
    "role": "--role",
    "redact_patterns": "--redact-pattern",
}
SECONDS = frozenset({"expire_seconds"})
DAYS = {"604800": "7d", "604800.0": "7d"}
BOUND = re.compile(
    r"Input should be (less than or equal to|greater than or equal to|less than|"
    r"greater than) (-?[\d.]+)"
)
BOUND_WORDS = {
    "less than or equal to": "at most",
    "greater than or equal to": "at least",
    "less than": "less than",
    "greater than": "more than",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--url",
    metavar="URL",
    help="Server URL [env PEEPHOLE_URL; saved by login; default http://127.0.0.1:7777].",
)
@click.option("--token", metavar="TOKEN", help="User token [env PEEPHOLE_TOKEN; saved by login].")
@click.version_option(__version__, "--version", prog_name="peephole")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """peephole: tracepoints and logpoints in running Python services.

    Place a probe on FILE:LINE of a service, then read the snapshots it captures:

    \b
      peephole tracepoint add shop/cart.py:42 --condition "total > 100"
      peephole snapshots list
      peephole snapshots show ID
    """
    ctx.obj = State(url=url, token=token)


cli.add_command(login.login)
cli.add_command(services.services)
cli.add_command(services.instances)
cli.add_command(add.tracepoint)
cli.add_command(add.logpoint)
cli.add_command(probes.probes)
cli.add_command(snapshots.snapshots)
cli.add_command(events.events)
cli.add_command(exceptions.exceptions)
cli.add_command(source.source)
cli.add_command(admin.tokens)
cli.add_command(admin.agent_keys)
cli.add_command(admin.audit)
cli.add_command(admin.policy)
cli.add_command(launchers.server)
cli.add_command(launchers.run)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (what tests call)."""
    try:
        result: Any = cli.main(args=argv, prog_name="peephole", standalone_mode=False)
    except click.UsageError as exc:
        # click 8.2 raises NoArgsIsHelpError for a bare group; 8.1 (the declared floor) prints
        # the help itself and has no such class, so it is looked up, never named.
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            return 0
        where = exc.ctx.command_path if exc.ctx else "peephole"
        return _error(f"{exc.format_message().rstrip('.')} (see `{where} --help`)", 2)
    except click.ClickException as exc:
        return _error(exc.format_message(), exc.exit_code)
    except click.Abort:
        return _error("aborted", 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The client is imported only here, so `peephole run` never loads it.
        from peephole.client.errors import PeepholeError

        if not isinstance(exc, PeepholeError):
            raise
        return _error(explain(exc), 1)
    return result if isinstance(result, int) else 0


def explain(error: Exception) -> str:
    """The client's one-line message plus what to do about it."""
    from peephole.client.errors import (
        AuthError,
        InvalidRequest,
        NotFound,
        NotPeephole,
        ServerUnreachable,
    )

    if isinstance(error, ServerUnreachable):
        return (
            f"{error}; is `peephole server` running there? Set the address with --url, "
            "PEEPHOLE_URL or `peephole login`"
        )
    if isinstance(error, NotPeephole):
        return (
            f"{error}; give the address of `peephole server` (its root, e.g. "
            "http://127.0.0.1:7777) with --url, PEEPHOLE_URL or `peephole login`"
        )
    if isinstance(error, InvalidRequest) and error.field:
        return flag_error(error.field, error.reason)
    if isinstance(error, AuthError):
        hint = (
            "run `peephole login` or set PEEPHOLE_TOKEN"
            if error.status == 401
            else "ask an admin for a token with a higher role"
        )
        return f"{error}; {hint}"
    if isinstance(error, NotFound) and error.resource in HINTS:
        return f"{error}; {HINTS[error.resource]}"
    return str(error)


def flag_error(field: str, reason: str) -> str:
    """``invalid hit_limit: Input should be less than or equal to 1000`` in the words of the
    command line: ``--hits must be at most 1000``."""
    name, _, index = field.partition(".")
    flag = FLAGS.get(name)
    if flag is None:
        return f"invalid {field}: {reason}"
    if index.isdigit():
        flag = f"{flag} (the {ordinal(int(index) + 1)})"
    bound = BOUND.fullmatch(reason)
    if bound is None:
        return f"invalid {flag}: {reason}"
    limit = bound.group(2)
    unit = " seconds" + (f" ({DAYS[limit]})" if limit in DAYS else "") if name in SECONDS else ""
    return f"{flag} must be {BOUND_WORDS[bound.group(1)]} {limit}{unit}"


def ordinal(n: int) -> str:
    words = ("first", "second", "third", "fourth", "fifth")
    return words[n - 1] if n <= len(words) else f"{n}th"


def main() -> NoReturn:
    sys.exit(run())


def _error(message: str, code: int) -> int:
    """One line on stderr; a syntax error keeps the two lines that show where (a caret)."""
    first, newline, rest = message.partition("\n")
    click.echo(f"error: {' '.join(first.split())}{newline}{rest.rstrip()}", err=True)
    return code


if __name__ == "__main__":
    main()
