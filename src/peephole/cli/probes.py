"""``peephole probes ...``: list, inspect, change and remove probes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from peephole.cli.common import (
    State,
    console,
    duration_option,
    json_option,
    location_argument,
    pass_state,
    print_json,
)
from peephole.protocol import LOG_LEVELS, PROBE_STATES

if TYPE_CHECKING:
    from peephole.client import Probe

__all__ = ["probes"]


@click.group()
def probes() -> None:
    """List, show, edit, enable, disable and remove probes."""


@probes.command("list")
@click.option("--service", "-s", metavar="NAME", help="Only probes targeting this service.")
@click.option(
    "--state", "probe_state", type=click.Choice(PROBE_STATES), help="Only probes in this state."
)
@json_option
@pass_state
def list_probes(state: State, service: str | None, probe_state: str | None, as_json: bool) -> None:
    """List probes with their overall state and captures."""
    items = state.client().probes(service, probe_state)
    if as_json:
        print_json([p.to_dict() for p in items])
        return
    from peephole.cli import render

    console().print(render.probes(items))


@probes.command("show")
@click.argument("probe_id", metavar="ID")
@json_option
@pass_state
def show(state: State, probe_id: str, as_json: bool) -> None:
    """Show a probe and its status on every instance."""
    probe = state.client().probe(probe_id)
    if as_json:
        print_json(probe.to_dict())
        return
    from peephole.cli import render

    console().print(render.probe(probe))


@probes.command("edit")
@click.argument("probe_id", metavar="ID")
@click.option("--condition", "-c", metavar="EXPR", help='New condition ("" removes it).')
@click.option(
    "--watch",
    "-w",
    "watches",
    metavar="EXPR",
    multiple=True,
    help="Replace the watch expressions (repeatable).",
)
@click.option("--no-watches", is_flag=True, help="Remove every watch expression.")
@click.option("--template", metavar="TEMPLATE", help="New logpoint template.")
@click.option("--level", type=click.Choice(LOG_LEVELS), help="New logpoint level.")
@click.option("--logger", metavar="NAME", help='New logger name ("" removes it).')
@click.option(
    "--hits",
    "hit_limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="New hit limit (captures before the probe is done).",
)
@duration_option("--expire", help="Expire this long from now: 90s, 30m, 2h, 1d.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="PER_S",
    help="New rate limit (hits per second).",
)
@json_option
@pass_state
def edit(
    state: State,
    probe_id: str,
    condition: str | None,
    watches: tuple[str, ...],
    no_watches: bool,
    template: str | None,
    level: str | None,
    logger: str | None,
    hit_limit: int | None,
    expire: float | None,
    rate: float | None,
    as_json: bool,
) -> None:
    """Change a probe; agents pick up the new version at once."""
    changes: dict[str, Any] = {}
    if condition is not None:
        changes["condition"] = condition or None
    if watches and no_watches:
        raise click.UsageError("--watch and --no-watches cannot be used together")
    if watches or no_watches:
        changes["watches"] = list(watches)
    if template is not None:
        changes["template"] = template
    if level is not None:
        changes["level"] = level
    if logger is not None:
        changes["logger"] = logger or None
    if hit_limit is not None:
        changes["hit_limit"] = hit_limit
    if expire is not None:
        changes["expire_seconds"] = expire
    if rate is not None:
        changes["rate"] = rate
    if not changes:
        raise click.UsageError("nothing to change: give at least one option, e.g. --condition")
    _changed(state, probe_id, changes, "updated to version {version}", as_json)


@probes.command("move")
@click.argument("probe_id", metavar="ID")
@location_argument
@json_option
@pass_state
def move(state: State, probe_id: str, location: tuple[str, int], as_json: bool) -> None:
    """Move a probe to FILE:LINE (a new version of it, with its history and settings).

    For a probe an agent could not place ("no code at line 88", "no such file"), which
    `probes edit` cannot fix.
    """
    file, line = location
    _changed(
        state,
        probe_id,
        {"file": file, "line": line},
        f"moved to {file}:{line} (version {{version}})",
        as_json,
    )


@probes.command("enable")
@click.argument("probe_id", metavar="ID")
@json_option
@pass_state
def enable(state: State, probe_id: str, as_json: bool) -> None:
    """Enable a disabled probe (and wait for the agents to report it, as `add` does)."""
    from peephole.cli.add import fail_on_rejection, settle

    client = state.client()
    probe = settle(client, client.enable_probe(probe_id))
    _done(probe, "enabled", as_json)
    fail_on_rejection(probe, probe.kind, probe.target.service)


@probes.command("disable")
@click.argument("probe_id", metavar="ID")
@json_option
@pass_state
def disable(state: State, probe_id: str, as_json: bool) -> None:
    """Disable a probe without removing it (agents uninstall it)."""
    _done(state.client().disable_probe(probe_id), "disabled", as_json)


@probes.command("rm")
@click.argument("probe_ids", metavar="ID...", nargs=-1, required=True)
@pass_state
def remove(state: State, probe_ids: tuple[str, ...]) -> None:
    """Remove probes (agents uninstall them; their events are kept)."""
    client = state.client()
    for probe_id in probe_ids:
        client.delete_probe(probe_id)
        click.echo(f"probe {probe_id} removed")


def _changed(
    state: State, probe_id: str, changes: dict[str, Any], what: str, as_json: bool
) -> None:
    """Apply an edit, wait for the agents' statuses of the new version (not the previous
    one's), print it, and fail with what to do if an agent refused it."""
    from peephole.cli.add import fail_on_rejection, settle

    client = state.client()
    probe = client.update_probe(probe_id, **changes)
    if probe.enabled:
        probe = settle(client, probe)
    _done(probe, what.format(version=probe.version), as_json)
    fail_on_rejection(probe, probe.kind, probe.target.service)


def _done(probe: Probe, what: str, as_json: bool) -> None:
    if as_json:
        print_json(probe.to_dict())
    else:
        click.echo(f"probe {probe.id} {what}: {probe.summary or probe.state}")
