"""Administration: user tokens, agent keys, the audit log and redaction policies."""

from __future__ import annotations

import json
import time
from typing import Union

import click

from peephole.cli.common import (
    State,
    console,
    duration_option,
    json_option,
    pass_state,
    print_json,
)
from peephole.client.models import AgentKey, NewAgentKey, NewToken, Token

__all__ = ["agent_keys", "audit", "policy", "tokens"]

ROLES = ("viewer", "debugger", "admin")
EXPIRES_HELP = "Stop working after this long: 12h, 30d, 90m (default: until revoked)."


def standing(credential: Union[Token, AgentKey, NewToken, NewAgentKey]) -> str:
    """``active``, ``active until <UTC time>``, ``expired`` or ``revoked <UTC time>`` (one
    just created is neither revoked nor expired)."""

    def at(epoch: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))

    revoked_at: float | None = None
    active = True
    if isinstance(credential, (Token, AgentKey)):
        revoked_at, active = credential.revoked_at, credential.active
    if revoked_at is not None:
        return f"revoked {at(revoked_at)}"
    if credential.expires_at is not None:
        return f"active until {at(credential.expires_at)}" if active else "expired"
    return "active"


@click.group()
def tokens() -> None:
    """User tokens (admin): who may see and do what."""


@tokens.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="viewer",
    show_default=True,
    help="viewer reads; debugger also places probes; admin also manages access.",
)
@duration_option("--expires", help=EXPIRES_HELP)
@json_option
@pass_state
def create_token(state: State, name: str, role: str, expires: float | None, as_json: bool) -> None:
    """Create a user token; it is shown once."""
    token = state.client().create_token(name, role, expires)
    if as_json:
        print_json(token.to_dict())
    else:
        click.echo(
            f"token {token.id} for {token.name} ({token.role}, {standing(token)}), "
            f"shown once: {token.token}"
        )


@tokens.command("list")
@json_option
@pass_state
def list_tokens(state: State, as_json: bool) -> None:
    """List user tokens by id, name, role and standing (never the secrets)."""
    items = state.client().tokens()
    if as_json:
        print_json([t.to_dict() for t in items])
        return
    for token in items:
        click.echo(f"{token.id}  {token.name}  {token.role}  {standing(token)}")


@tokens.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1))
@json_option
@pass_state
def revoke_token(state: State, token_id: int, as_json: bool) -> None:
    """Revoke a user token now, on every server (its live streams are closed)."""
    token = state.client().revoke_token(token_id)
    if as_json:
        print_json(token.to_dict())
    else:
        click.echo(f"token {token.id} for {token.name}: {standing(token)}")


@click.group("agent-keys")
def agent_keys() -> None:
    """Agent keys (admin): what an agent needs to join."""


@agent_keys.command("create")
@click.argument("name")
@duration_option("--expires", help=EXPIRES_HELP)
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Only agents of this service may join with the key (repeatable; default: any service).",
)
@json_option
@pass_state
def create_agent_key(
    state: State, name: str, expires: float | None, services: tuple[str, ...], as_json: bool
) -> None:
    """Create an agent key; it is shown once."""
    key = state.client().create_agent_key(name, expires, list(services) or None)
    if as_json:
        print_json(key.to_dict())
    else:
        scope = f" for {', '.join(key.services)}" if key.services else ""
        click.echo(f"agent key {key.id} {key.name}{scope} ({standing(key)}), shown once: {key.key}")


@agent_keys.command("list")
@json_option
@pass_state
def list_agent_keys(state: State, as_json: bool) -> None:
    """List agent keys by id, name, services and standing (never the secrets)."""
    items = state.client().agent_keys()
    if as_json:
        print_json([k.to_dict() for k in items])
        return
    for key in items:
        services = ",".join(key.services) if key.services else "any service"
        click.echo(f"{key.id}  {key.name}  {services}  {standing(key)}")


@agent_keys.command("revoke")
@click.argument("key_id", metavar="ID", type=click.IntRange(1))
@json_option
@pass_state
def revoke_agent_key(state: State, key_id: int, as_json: bool) -> None:
    """Revoke an agent key now, on every server (agents using it are disconnected)."""
    key = state.client().revoke_agent_key(key_id)
    if as_json:
        print_json(key.to_dict())
    else:
        click.echo(f"agent key {key.id} {key.name}: {standing(key)}")


@click.command()
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 10_000),
    default=50,
    metavar="N",
    show_default=True,
    help="How many entries (newest first).",
)
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
    current = state.client().policy(service).to_dict()
    if as_json:
        print_json(current)
        return
    for name, value in current.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
        click.echo(f"{name}: {shown or '-'}")


@policy.command("set")
@click.argument("service")
@click.option(
    "--redact-name",
    "redact_names",
    metavar="NAME",
    multiple=True,
    help="Also redact variables and fields with this name (repeatable; replaces the list).",
)
@click.option(
    "--allow-name",
    "allow_names",
    metavar="NAME",
    multiple=True,
    help="Do not redact this built-in name (repeatable; replaces the list).",
)
@click.option(
    "--redact-pattern",
    "redact_patterns",
    metavar="REGEX",
    multiple=True,
    help="Redact string values matching this (repeatable; replaces the list).",
)
@click.option(
    "--capture-exceptions/--no-capture-exceptions",
    default=None,
    help="Capture exception snapshots or not.",
)
@click.option(
    "--serve-source/--no-serve-source",
    default=None,
    help="Let the agents serve the deployed source to the source view, or not.",
)
@click.option(
    "--source-deny",
    "source_deny",
    metavar="GLOB",
    multiple=True,
    help="Never serve files matching this, on top of the built-in deny-list "
    "(repeatable; replaces the list).",
)
@click.option(
    "--clear", is_flag=True, help="Start from an empty policy instead of the current one."
)
@json_option
@pass_state
def set_policy(
    state: State,
    service: str,
    redact_names: tuple[str, ...],
    allow_names: tuple[str, ...],
    redact_patterns: tuple[str, ...],
    capture_exceptions: bool | None,
    serve_source: bool | None,
    source_deny: tuple[str, ...],
    clear: bool,
    as_json: bool,
) -> None:
    """Change a service's policy; its running agents apply it at once (admin)."""
    client = state.client()
    new = {} if clear else client.policy(service).to_dict()
    for name, values in (
        ("redact_names", redact_names),
        ("allow_names", allow_names),
        ("redact_patterns", redact_patterns),
        ("source_deny", source_deny),
    ):
        if values:
            new[name] = list(values)
    if capture_exceptions is not None:
        new["capture_exceptions"] = capture_exceptions
    if serve_source is not None:
        new["serve_source"] = serve_source
    saved = client.set_policy(service, new)
    if as_json:
        print_json(saved.to_dict())
    else:
        click.echo(f"policy of {service} saved and pushed to its live agents")
