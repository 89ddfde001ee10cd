"""``peephole exceptions list|show``: exceptions grouped by fingerprint."""

from __future__ import annotations

import click

from peephole.cli.common import State, console, json_option, pass_state, print_json

__all__ = ["exceptions"]


@click.group()
def exceptions() -> None:
    """Exceptions the agents captured, grouped by fingerprint."""


@exceptions.command("list")
@click.option("--service", "-s", metavar="NAME", help="Only this service's exceptions.")
@json_option
@pass_state
def list_exceptions(state: State, service: str | None, as_json: bool) -> None:
    """List exception groups, most recently seen first."""
    items = state.client().exceptions(service)
    if as_json:
        print_json([g.to_dict() for g in items])
        return
    from peephole.cli import render

    console().print(render.exceptions(items))


@exceptions.command("show")
@click.argument("fingerprint")
@click.option(
    "--depth",
    "-d",
    type=click.IntRange(min=0),
    metavar="D",
    help="Expand variables D levels deep (default: everything captured).",
)
@json_option
@pass_state
def show(state: State, fingerprint: str, depth: int | None, as_json: bool) -> None:
    """Show an exception group and its latest event.

    The group's counts and recent events, then the latest event's stack and locals.
    """
    client = state.client()
    group = client.exception(fingerprint)
    if as_json:
        print_json(group.to_dict())
        return
    from peephole.cli import render

    out = console()
    out.print(render.exception_group(group))
    latest = group.last_event_id or (group.events[0].id if group.events else None)
    if latest:
        event = next((e for e in group.events if e.id == latest and e.frames), None)
        out.print()
        out.print(render.snapshot(event or client.event(latest), None, depth))
