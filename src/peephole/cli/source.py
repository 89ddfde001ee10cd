"""``peephole source SERVICE [PATH]``: the code as deployed, read by a live agent.

Line numbers marked with a dot can take a probe, so FILE:LINE for ``tracepoint add`` can be
picked without access to the repository.
"""

from __future__ import annotations

import click

from peephole.cli.common import State, json_option, pass_state, print_json
from peephole.protocol import is_library_path

__all__ = ["application_first", "source"]

MARK = "•"


@click.command()
@click.argument("service")
@click.argument("path", required=False)
@click.option(
    "--around",
    type=click.IntRange(min=1),
    metavar="LINE",
    help="Only the lines near LINE (10 either side).",
)
@json_option
@pass_state
def source(state: State, service: str, path: str | None, around: int | None, as_json: bool) -> None:
    """Show a file of SERVICE as deployed, or list its files.

    Without PATH, lists the source files the service has loaded. With PATH (a path suffix,
    e.g. shop/cart.py), prints the file with line numbers; lines marked with a dot can take
    a probe.
    """
    from peephole.cli.render import printable  # Rich loads only when a command runs

    client = state.client()
    if path is None:
        files = application_first(client.files(service))
        if as_json:
            print_json(files)
        else:
            for name in files:
                click.echo(printable(name))
        return
    found = client.source(service, path)
    if as_json:
        print_json(found.to_dict())
        return
    probe_lines = set(found.lines)
    # Lines end at "\n" only: splitlines() also breaks at form feeds, shifting every number.
    lines = [line.rstrip("\r") for line in found.text.removesuffix("\n").split("\n")]
    first, last = 1, len(lines)
    if around is not None:
        first, last = max(1, around - 10), min(len(lines), around + 10)
    width = len(str(last))
    click.echo(f"# {printable(found.path)} ({MARK} can take a probe)")
    for number in range(first, last + 1):
        mark = MARK if number in probe_lines else " "
        line = printable(lines[number - 1].expandtabs(8))
        click.echo(f"{mark} {number:>{width}}  {line}".rstrip())


def application_first(files: list[str]) -> list[str]:
    """The service's own files first (what a person places probes in), then installed
    libraries, each group sorted by path."""

    return sorted(files, key=lambda path: (is_library_path(path), path))
