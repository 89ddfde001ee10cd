"""``peephole server`` and ``peephole run``: the commands that start long-running processes.

Both only parse flags and hand over: the server to :mod:`peephole.server.main`, the program
to :func:`peephole.cli.run.run_command`. Their modules are imported inside the commands, so
the rest of the CLI never loads the server's or the agent's code.
"""

from __future__ import annotations

import click

__all__ = ["run", "server"]


@click.command()
@click.option("--host", metavar="HOST", help="Interface to listen on [default 127.0.0.1].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Port to listen on [default 7777].",
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Where the SQLite database lives [default ~/.local/share/peephole].",
)
@click.option(
    "--database",
    metavar="URL",
    help="sqlite:///path or postgresql://user@host/db [default SQLite in --data-dir].",
)
@click.option("--cert", metavar="FILE", help="TLS certificate (PEM); needs --key.")
@click.option("--key", metavar="FILE", help="TLS private key (PEM); needs --cert.")
@click.option(
    "--trace-link-template",
    metavar="URL",
    help="Link events to traces, e.g. https://jaeger/trace/{trace_id}.",
)
@click.option(
    "--retention-days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Keep events this long [default 7].",
)
@click.option(
    "--retention-events",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep at most this many events per service [default 100000].",
)
@click.option(
    "--admin-token",
    metavar="TOKEN",
    help="Create this admin token instead of a random one (demo, tests).",
)
@click.option(
    "--agent-key",
    metavar="KEY",
    help="Create this agent key instead of a random one (demo, tests).",
)
def server(
    host: str | None,
    port: int | None,
    data_dir: str | None,
    database: str | None,
    cert: str | None,
    key: str | None,
    trace_link_template: str | None,
    retention_days: float | None,
    retention_events: int | None,
    admin_token: str | None,
    agent_key: str | None,
) -> None:
    """Run the peephole server (API, agent gateway, UI).

    Every flag can also be set as PEEPHOLE_SERVER_<FLAG>, e.g. PEEPHOLE_SERVER_PORT=8000.
    The first start with an empty database prints an admin token and an agent key once.
    """
    from peephole.cli.common import Failure
    from peephole.server.main import BindError, serve
    from peephole.server.settings import SettingsError

    try:
        serve(
            host=host,
            port=port,
            data_dir=data_dir,
            database=database,
            cert=cert,
            key=key,
            trace_link_template=trace_link_template,
            retention_days=retention_days,
            retention_events=retention_events,
            admin_token=admin_token,
            agent_key=agent_key,
        )
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    except BindError as exc:
        raise Failure(str(exc)) from None
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly, then re-raised the Ctrl-C: that is success


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--service",
    "-s",
    metavar="NAME",
    help="Service name [env PEEPHOLE_SERVICE; default: the program's name].",
)
@click.option("--env", metavar="ENV", help="Environment, e.g. prod [env PEEPHOLE_ENVIRONMENT].")
@click.option("--version", metavar="VERSION", help="Version of the program [env PEEPHOLE_VERSION].")
@click.option(
    "--tag",
    "tags",
    metavar="KEY=VALUE",
    multiple=True,
    help="Tag for targeting (repeatable) [env PEEPHOLE_TAGS=k=v,k2=v2].",
)
@click.option("--server", metavar="URL", help="peephole server [env PEEPHOLE_SERVER].")
@click.option("--key", metavar="KEY", help="Agent key [env PEEPHOLE_KEY].")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Let the program start only once its probes are installed, or after "
    "this long [default: never wait].",
)
@click.argument("program", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    service: str | None,
    env: str | None,
    version: str | None,
    tags: tuple[str, ...],
    server: str | None,
    key: str | None,
    wait: float | None,
    program: tuple[str, ...],
) -> int:
    """Run PROGRAM with the agent in every Python process it starts.

    \b
      peephole run --service shop -- python app.py
      peephole run --service shop --env prod -- gunicorn -w 4 shop.wsgi
    """
    from peephole.cli.run import run_command

    return run_command(
        list(program),
        service=service,
        env=env,
        version=version,
        tags=list(tags),
        server=server,
        key=key,
        wait=wait,
    )
