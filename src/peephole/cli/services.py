"""``peephole services`` and ``peephole instances``: what is connected."""

from __future__ import annotations

import click

from peephole.cli.common import State, console, json_option, pass_state, print_json

__all__ = ["instances", "services"]


@click.command()
@json_option
@pass_state
def services(state: State, as_json: bool) -> None:
    """List services and their live instances.

    With the versions and environments their instances report.
    """
    items = state.client().services()
    if as_json:
        print_json([s.to_dict() for s in items])
        return
    from peephole.cli import render

    console().print(render.services(items))


@click.command()
@click.option("--service", "-s", metavar="NAME", help="Only this service's instances.")
@click.option(
    "--all",
    "include_gone",
    is_flag=True,
    help="Include instances that are gone (not seen for a while).",
)
@json_option
@pass_state
def instances(state: State, service: str | None, include_gone: bool, as_json: bool) -> None:
    """List instances: the processes running the agent.

    Connected ones only, unless --all.
    """
    items = state.client().instances(service, include_gone)
    if as_json:
        print_json([i.to_dict() for i in items])
        return
    from peephole.cli import render

    console().print(render.instances(items))
