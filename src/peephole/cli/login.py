"""``peephole login``: check a server URL and token, then save them for later commands."""

from __future__ import annotations

import click

from peephole.cli.common import State, json_option, pass_state, print_json

__all__ = ["login"]


@click.command()
@click.option(
    "--url",
    "login_url",
    metavar="URL",
    help="Server URL (default: --url, PEEPHOLE_URL, the saved one, or http://127.0.0.1:7777).",
)
@click.option(
    "--token",
    "login_token",
    metavar="TOKEN",
    help="User token (default: --token or PEEPHOLE_TOKEN; prompted when missing).",
)
@json_option
@pass_state
def login(state: State, login_url: str | None, login_token: str | None, as_json: bool) -> None:
    """Save a server URL and token for later commands.

    They go to the user config file (mode 0600), once the server has accepted the token.
    PEEPHOLE_URL and PEEPHOLE_TOKEN, when set, still win over the saved values.
    """
    import os

    from peephole.client import Client, config

    url = login_url or state.url
    token = login_token or state.token or os.environ.get(config.TOKEN_VARIABLE)
    if not token:
        token = click.prompt("Token", hide_input=True).strip()
    with Client(url, token) as client:
        user = client.me()
        saved_url = client.url
    path = config.save(saved_url, token)
    if as_json:
        print_json({"url": saved_url, "name": user.name, "role": user.role, "config": str(path)})
    else:
        click.echo(f"logged in to {saved_url} as {user.name} ({user.role}); saved in {path}")
