"""``peephole events tail [--follow]``: recent events, then live ones as they arrive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from peephole.cli.common import State, console, json_option, json_text, pass_state

if TYPE_CHECKING:
    from peephole.client import Event

__all__ = ["events"]

TYPES = ("snapshot", "log", "exception")


@click.group()
def events() -> None:
    """Events of every kind: snapshots, logpoint lines, exceptions."""


@events.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--type", "event_type", type=click.Choice(TYPES), help="Only this kind.")
@click.option("--probe", "probe_id", metavar="ID", help="Only this probe's events.")
@click.option("--service", "-s", metavar="NAME", help="Only this service's events.")
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(0, 1000),
    default=20,
    metavar="N",
    show_default=True,
    help="How many recent events to print first.",
)
@json_option
@pass_state
def tail(
    state: State,
    follow: bool,
    event_type: str | None,
    probe_id: str | None,
    service: str | None,
    lines: int,
    as_json: bool,
) -> None:
    """Print recent events; with --follow, keep streaming.

    Recent events come oldest first; --follow then prints new ones as they arrive, until
    Ctrl-C. With --json, prints one JSON object per line.
    """
    from peephole.client import Event

    client = state.client()
    probe_id = state.full_probe_id(probe_id)
    # The stream opens before history is read, so nothing falls in between.
    live = client.stream(service=service, probe_id=probe_id, type=event_type) if follow else None
    try:
        seen: set[str] = set()
        if lines:
            page = client.events(type=event_type, probe_id=probe_id, service=service, limit=lines)
            for event in reversed(page.items):
                seen.add(event.id)
                _print(event, as_json)
        for item in live or ():
            if isinstance(item, Event) and item.id not in seen:
                _print(item, as_json)
    finally:
        if live is not None:
            live.close()


def _print(event: Event, as_json: bool) -> None:
    if as_json:
        click.echo(json_text(event.to_dict()))
        return
    from peephole.cli import render

    console().print(render.event_line(event), soft_wrap=True)
