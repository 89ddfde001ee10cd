"""Administration: user tokens, agent keys, the audit log and redaction policies."""

from __future__ import annotations

import json

import click

from peephole.cli.common import State, console, json_option, pass_state, print_json

ROLES = ("viewer", "debugger", "admin")


@click.group()
def tokens() -> None:
    """User tokens (admin): who may see and do what."""


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="viewer reads; debugger also places probes; admin also manages access.")
@json_option
@pass_state
def create_token(state: State, name: str, role: str, as_json: bool) -> None:
    """Create a user token; it is shown once."""
    token = state.client().create_token(name, role)
    if as_json:
        print_json(token.to_dict())
    else:
        click.echo(f"token for {token.name} ({token.role}), shown once: {token.token}")


@tokens.command("list")
@json_option
@pass_state
def list_tokens(state: State, as_json: bool) -> None:
    """List user tokens by name and role (never the secrets)."""
    items = state.client().tokens()
    if as_json:
        print_json([t.to_dict() for t in items])
        return
    for token in items:
        click.echo(f"{token.name}  {token.role}")


@click.group("agent-keys")
def agent_keys() -> None:
    """Agent keys (admin): what an agent needs to join."""


@agent_keys.command("create")
@click.argument("name")
@json_option
@pass_state
def create_agent_key(state: State, name: str, as_json: bool) -> None:
    """Create an agent key; it is shown once."""
    key = state.client().create_agent_key(name)
    if as_json:
        print_json(key.to_dict())
    else:
        click.echo(f"agent key {key.name}, shown once: {key.key}")


@click.command()
@click.option("--limit", "-n", type=click.IntRange(1, 10_000), default=50, metavar="N",
              show_default=True, help="How many entries (newest first).")
@click.option("--probe", "probe_id", metavar="ID", help="Only this probe's changes.")
@json_option
@pass_state
def audit(state: State, limit: int, probe_id: str | None, as_json: bool) -> None:
    """Show who changed which probe or policy, and when (admin)."""
    entries = state.client().audit(limit, probe_id)
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    from peephole.cli import render

    console().print(render.audit(entries))


@click.group()
def policy() -> None:
    """Redaction and exception policy of a service (live)."""


@policy.command("show")
@click.argument("service")
@json_option
@pass_state
def show_policy(state: State, service: str, as_json: bool) -> None:
    """Show a service's policy."""
    current = state.client().policy(service)
    if as_json:
        print_json(current)
        return
    for name, value in current.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
        click.echo(f"{name}: {shown or '-'}")


@policy.command("set")
@click.argument("service")
@click.option("--redact-name", "redact_names", metavar="NAME", multiple=True,
              help="Also redact variables and fields with this name (repeatable; replaces "
                   "the list).")
@click.option("--allow-name", "allow_names", metavar="NAME", multiple=True,
              help="Do not redact this built-in name (repeatable; replaces the list).")
@click.option("--redact-pattern", "redact_patterns", metavar="REGEX", multiple=True,
              help="Redact string values matching this (repeatable; replaces the list).")
@click.option("--capture-exceptions/--no-capture-exceptions", default=None,
              help="Capture exception snapshots or not.")
@click.option("--clear", is_flag=True, help="Start from an empty policy instead of the "
              "current one.")
@json_option
@pass_state
def set_policy(state: State, service: str, redact_names: tuple[str, ...],
               allow_names: tuple[str, ...], redact_patterns: tuple[str, ...],
               capture_exceptions: bool | None, clear: bool, as_json: bool) -> None:
    """Change a service's policy; its running agents apply it at once (admin)."""
    client = state.client()
    new = {} if clear else dict(client.policy(service))
    for name, values in (("redact_names", redact_names), ("allow_names", allow_names),
                         ("redact_patterns", redact_patterns)):
        if values:
            new[name] = list(values)
    if capture_exceptions is not None:
        new["capture_exceptions"] = capture_exceptions
    saved = client.set_policy(service, new)
    if as_json:
        print_json(saved)
    else:
        click.echo(f"policy of {service} saved and pushed to its live agents")
