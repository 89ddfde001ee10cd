"""``peephole tracepoint add`` and ``peephole logpoint add``: place a probe on FILE:LINE.

Without a target flag the probe goes to the one connected service; with several connected,
the command asks for ``--service`` and lists them. After placing, it watches the probe for a
moment so that an expression the agent rejects is reported at once, with the agent's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from peephole.cli.common import (
    Failure,
    State,
    duration_option,
    json_option,
    location_argument,
    parse_tags,
    pass_state,
    print_json,
)
from peephole.protocol import LOG_LEVELS

if TYPE_CHECKING:
    from peephole.client import Client, Probe, Target

F = TypeVar("F", bound=Callable[..., Any])

SETTLE_SECONDS = 2.0  # how long to wait for agents to report the new probe


def probe_options(func: F) -> F:
    """The options both kinds share: target, condition, watches, limits."""
    options = [
        click.option("--service", "-s", metavar="NAME",
                     help="Target service (default: the only connected one)."),
        click.option("--env", "environment", metavar="ENV", help="Only instances in this "
                     "environment."),
        click.option("--version", metavar="VERSION", help="Only instances of this version."),
        click.option("--tag", "tags", metavar="KEY=VALUE", multiple=True,
                     help="Only instances with this tag (repeatable)."),
        click.option("--instance", "instances", metavar="ID", multiple=True,
                     help="Only this instance (repeatable)."),
        click.option("--condition", "-c", metavar="EXPR",
                     help='Capture only when this is true, e.g. "cart.total > 100".'),
        click.option("--watch", "-w", "watches", metavar="EXPR", multiple=True,
                     help="Also evaluate this expression at each hit (repeatable)."),
        click.option("--hits", "hit_limit", type=click.IntRange(min=1), metavar="N",
                     help="Stop after N captures (tracepoint default 10, at most 1000)."),
        duration_option("--expire", help="Remove after this long: 90s, 30m, 2h, 1d "
                        "(default 1h, at most 7d)."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="PER_S",
                     help="At most this many hits per second."),
        click.option("--disabled", is_flag=True, help="Create the probe disabled."),
        json_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group()
def tracepoint() -> None:
    """Tracepoints: capture the stack and locals when a line runs."""


@click.group()
def logpoint() -> None:
    """Logpoints: log a line from a template when code runs."""


@tracepoint.command("add")
@location_argument
@probe_options
@pass_state
def add_tracepoint(state: State, location: tuple[str, int], **options: Any) -> None:
    """Place a tracepoint on FILE:LINE.

    FILE is a path suffix of the deployed file, e.g. shop/cart.py:42. Each hit captures the
    stack, the locals of the innermost frames and the --watch expressions.
    """
    _add(state, "tracepoint", location, None, "info", None, **options)


@logpoint.command("add")
@location_argument
@click.argument("template")
@click.option("--level", type=click.Choice(LOG_LEVELS), default="info", show_default=True,
              help="Log level of the lines.")
@click.option("--logger", metavar="NAME",
              help="Also write the lines to this `logging` logger in the application.")
@probe_options
@pass_state
def add_logpoint(state: State, location: tuple[str, int], template: str, level: str,
                 logger: str | None, **options: Any) -> None:
    """Place a logpoint on FILE:LINE that logs TEMPLATE.

    TEMPLATE holds expressions in braces, e.g. "user {user.id} paid {total}" ({{ and }} for
    literal braces). Lines show up in `peephole events tail`.
    """
    _add(state, "logpoint", location, template, level, logger, **options)


def _add(state: State, kind: str, location: tuple[str, int], template: str | None,
         level: str, logger: str | None, *, service: str | None, environment: str | None,
         version: str | None, tags: tuple[str, ...], instances: tuple[str, ...],
         condition: str | None, watches: tuple[str, ...], hit_limit: int | None,
         expire: float | None, rate: float | None, disabled: bool, as_json: bool) -> None:
    from peephole.client import NewProbe, Target

    client = state.client()
    target = Target(service=service, version=version, environment=environment,
                    tags=parse_tags(tags), instances=list(instances))
    if not (service or environment or version or tags or instances):
        target.service = _only_service(client)
    new = NewProbe(kind=kind, file=location[0], line=location[1], template=template,
                   condition=condition, watches=list(watches), level=level, logger=logger,
                   hit_limit=hit_limit, expire_seconds=expire, rate=rate, enabled=not disabled,
                   target=target)
    probe = client.create_probe(new)
    if not disabled:
        probe = _settle(client, probe, target)
    errors = probe.errors()
    if as_json:
        print_json(probe.to_dict())
    else:
        click.echo(f"{kind} {probe.id} placed at {probe.location} on {target.describe()}: "
                   f"{probe.summary or probe.state}")
    if errors:
        first = errors[0]
        raise Failure(
            f"the agent on instance {first.instance_id} rejected {kind} {probe.id}: "
            f"{first.message or 'no reason given'}; fix it with `peephole probes edit {probe.id}` "
            f"or remove it with `peephole probes rm {probe.id}`"
        )


def _only_service(client: Client) -> str:
    """The default target: the one service with connected instances, else a usage error."""
    live = [s.name for s in client.services() if s.instances > 0]
    if len(live) == 1:
        return live[0]
    if not live:
        raise click.UsageError(
            "no service is connected: name the target with --service NAME "
            "(the probe waits until the service connects)"
        )
    raise click.UsageError(
        f"{len(live)} services are connected ({', '.join(sorted(live))}): choose one with "
        "--service NAME (or target with --env, --version, --tag or --instance)"
    )


def _settle(client: Client, probe: Probe, target: Target) -> Probe:
    """Poll the new probe until every live targeted instance reported it, an instance
    reported an error, or ``SETTLE_SECONDS`` passed."""
    expected = len(target.instances) or sum(
        1 for i in client.instances(target.service)
        if i.connected and target.version in (None, i.version)
        and target.environment in (None, i.environment)
        and all(i.tags.get(k) == v for k, v in target.tags.items())
    )
    if expected == 0:
        return probe
    deadline = time.monotonic() + SETTLE_SECONDS
    while not probe.errors() and len(probe.statuses) < expected:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
        probe = client.probe(probe.id)
    return probe
