"""``peephole snapshots list|show``: what the tracepoints captured."""

from __future__ import annotations

import click

from peephole.cli.common import State, console, json_option, pass_state, print_json

__all__ = ["snapshots"]


@click.group()
def snapshots() -> None:
    """List snapshots and show one (stack, variables)."""


@snapshots.command("list")
@click.option("--probe", "probe_id", metavar="ID", help="Only this probe's snapshots.")
@click.option("--service", "-s", metavar="NAME", help="Only this service's snapshots.")
@click.option("--instance", "instance_id", metavar="ID", help="Only this instance's snapshots.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 1000),
    default=20,
    metavar="N",
    show_default=True,
    help="How many (newest first).",
)
@click.option(
    "--cursor", metavar="CURSOR", help="Continue after a previous page (next_cursor of --json)."
)
@json_option
@pass_state
def list_snapshots(
    state: State,
    probe_id: str | None,
    service: str | None,
    instance_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List snapshots, newest first."""
    page = state.client().events(
        type="snapshot",
        probe_id=state.full_probe_id(probe_id),
        service=service,
        instance_id=instance_id,
        limit=limit,
        cursor=cursor,
    )
    if as_json:
        print_json(page.to_dict())
        return
    from rich.text import Text

    from peephole.cli import render

    out = console()
    out.print(render.events(page.items, kinds=False))
    if page.next_cursor:
        out.print(Text(f"more: peephole snapshots list --cursor {page.next_cursor}", "dim"))


@snapshots.command("show")
@click.argument("event_id", metavar="ID")
@click.option(
    "--frame",
    "-f",
    type=click.IntRange(min=0),
    metavar="N",
    help="Show the locals of frame N (0 is innermost; default: the innermost frame with locals).",
)
@click.option(
    "--depth",
    "-d",
    type=click.IntRange(min=0),
    metavar="D",
    help="Expand variables D levels deep (default: everything captured).",
)
@json_option
@pass_state
def show(state: State, event_id: str, frame: int | None, depth: int | None, as_json: bool) -> None:
    """Show a snapshot: its stack and variables.

    The stack is a table, the watches and the locals of one frame are trees; every cut the
    agent made (depth, items, length, redaction, budget) is marked. Works for exception
    events too.
    """
    event = state.client().event(event_id)
    frames = event.frames
    if frame is not None and frame >= len(frames):
        raise click.BadParameter(
            f"frame {frame} does not exist; this event has {len(frames)} frames"
            + (f" (0-{len(frames) - 1})" if frames else ""),
            param_hint="'--frame'",
        )
    if as_json:
        print_json(event.to_dict())
        return
    from peephole.cli import render

    console().print(render.snapshot(event, frame, depth))
