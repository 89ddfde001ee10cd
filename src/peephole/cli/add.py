"""``peephole tracepoint add`` and ``peephole logpoint add``: place a probe on FILE:LINE.

Without a target flag the probe goes to the one connected service; with several connected,
the command asks for ``--service`` and lists them. After placing, it watches the probe for a
moment so that an expression the agent rejects is reported at once, with the agent's reason.
"""

from __future__ import annotations

import re
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
    from peephole.client import Client, Probe

__all__ = ["fail_on_rejection", "logpoint", "settle", "tracepoint"]

F = TypeVar("F", bound=Callable[..., Any])

SETTLE_SECONDS = 2.0  # how long to wait for agents to report the new probe
# Agent reasons about an expression (``probes edit`` fixes them); any other is about the place.
EXPRESSION_ERRORS = (
    "condition",
    "watch",
    "template",
    "placeholder",
    "expression",
    "syntax",
    "a logpoint",
)
NEAREST = re.compile(r"nearest lines? with code: (\d+)")


def probe_options(func: F) -> F:
    """The options both kinds share: target, condition, watches, limits."""
    options = [
        click.option(
            "--service",
            "-s",
            metavar="NAME",
            help="Target service (default: the only connected one).",
        ),
        click.option(
            "--env", "environment", metavar="ENV", help="Only instances in this environment."
        ),
        click.option("--version", metavar="VERSION", help="Only instances of this version."),
        click.option(
            "--tag",
            "tags",
            metavar="KEY=VALUE",
            multiple=True,
            help="Only instances with this tag (repeatable).",
        ),
        click.option(
            "--instance",
            "instances",
            metavar="ID",
            multiple=True,
            help="Only this instance (repeatable).",
        ),
        click.option(
            "--condition",
            "-c",
            metavar="EXPR",
            help='Capture only when this is true, e.g. "cart.total > 100".',
        ),
        click.option(
            "--watch",
            "-w",
            "watches",
            metavar="EXPR",
            multiple=True,
            help="Also evaluate this expression at each hit (repeatable).",
        ),
        click.option(
            "--hits",
            "hit_limit",
            type=click.IntRange(min=1),
            metavar="N",
            help="Stop after N captures (tracepoint default 10, at most 1000).",
        ),
        duration_option(
            "--expire", help="Remove after this long: 90s, 30m, 2h, 1d (default 1h, at most 7d)."
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0, min_open=True),
            metavar="PER_S",
            help="At most this many hits per second.",
        ),
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
def add_tracepoint(state: State, /, location: tuple[str, int], **options: Any) -> None:
    """Place a tracepoint on FILE:LINE.

    FILE is a path suffix of the deployed file, e.g. shop/cart.py:42. Each hit captures the
    stack, the locals of the innermost frames and the --watch expressions.
    """
    _add(state, "tracepoint", location, None, "info", None, **options)


@logpoint.command("add")
@location_argument
@click.argument("template")
@click.option(
    "--level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="Log level of the lines.",
)
@click.option(
    "--logger",
    metavar="NAME",
    help="Also write the lines to this `logging` logger in the application.",
)
@probe_options
@pass_state
def add_logpoint(
    state: State,
    /,
    location: tuple[str, int],
    template: str,
    level: str,
    logger: str | None,
    **options: Any,
) -> None:
    """Place a logpoint on FILE:LINE that logs TEMPLATE.

    TEMPLATE holds expressions in braces, e.g. "user {user.id} paid {total}" ({{ and }} for
    literal braces). Lines show up in `peephole events tail`.
    """
    _add(state, "logpoint", location, template, level, logger, **options)


def _add(
    state: State,
    kind: str,
    location: tuple[str, int],
    template: str | None,
    level: str,
    logger: str | None,
    *,
    service: str | None,
    environment: str | None,
    version: str | None,
    tags: tuple[str, ...],
    instances: tuple[str, ...],
    condition: str | None,
    watches: tuple[str, ...],
    hit_limit: int | None,
    expire: float | None,
    rate: float | None,
    disabled: bool,
    as_json: bool,
) -> None:
    from peephole.client import NewProbe, Target

    client = state.client()
    target = Target(
        service=service,
        version=version,
        environment=environment,
        tags=parse_tags(tags),
        instances=list(instances),
    )
    if not (service or environment or version or tags or instances):
        target.service = _only_service(client)
    new = NewProbe(
        kind=kind,
        file=location[0],
        line=location[1],
        template=template,
        condition=condition,
        watches=list(watches),
        level=level,
        logger=logger,
        hit_limit=hit_limit,
        expire_seconds=expire,
        rate=rate,
        enabled=not disabled,
        target=target,
    )
    probe = client.create_probe(new)
    if service:
        _warn_if_unknown(client, service)
    if not disabled:
        probe = settle(client, probe)
    if as_json:
        print_json(probe.to_dict())
    else:
        click.echo(
            f"{kind} {probe.id} placed at {probe.location} on {target.describe()}: "
            f"{probe.summary or probe.state}"
        )
    fail_on_rejection(probe, kind, target.service)


def fail_on_rejection(probe: Probe, kind: str, service: str | None) -> None:
    """Exit 1 when an agent refused the probe, saying what can help: ``probes edit`` fixes
    an expression; a place with no code needs ``probes move`` (to the nearest line with
    code when the agent named one)."""
    errors = probe.errors()
    if not errors:
        return
    first = errors[0]
    reason = first.message or "no reason given"
    remove = f"remove it with `peephole probes rm {probe.id}`"
    if reason.startswith(EXPRESSION_ERRORS):
        hint = f"fix it with `peephole probes edit {probe.id}` or {remove}"
    else:
        nearest = NEAREST.search(reason)
        if nearest:
            hint = (
                f"move it with `peephole probes move {probe.id} "
                f"{probe.file}:{nearest.group(1)}` or {remove}"
            )
        else:
            files = f"`peephole source {service}` lists its files; " if service else ""
            hint = f"{files}move it with `peephole probes move {probe.id} FILE:LINE` or {remove}"
    raise Failure(
        f"the agent on instance {first.instance_id} rejected {kind} {probe.id}: {reason}; {hint}"
    )


def _warn_if_unknown(client: Client, service: str) -> None:
    """A typo in --service would wait forever in silence: say so when no instance of that
    service has ever connected (the probe is placed all the same, for one that will)."""
    if client.instances(service, include_gone=True):
        return
    known = sorted(s.name for s in client.services())
    click.echo(
        f"warning: no instance of service {service!r} has ever connected; known "
        f"services: {', '.join(known) or 'none yet'} (the probe waits for it)",
        err=True,
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


def settle(client: Client, probe: Probe) -> Probe:
    """Poll the probe until every live targeted instance reported this version of it, an
    instance refused this version, or ``SETTLE_SECONDS`` passed (older versions' statuses,
    say the error an edit just fixed, do not count)."""
    target = probe.target
    expected = len(target.instances) or sum(
        1
        for i in client.instances(target.service)
        if i.connected
        and target.version in (None, i.version)
        and target.environment in (None, i.environment)
        and all(i.tags.get(k) == v for k, v in target.tags.items())
    )
    if expected == 0:
        return probe
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        current = [s for s in probe.statuses if s.version >= probe.version]
        if len(current) >= expected or any(s.state == "error" for s in current):
            return probe
        if time.monotonic() >= deadline:
            return probe
        time.sleep(0.1)
        probe = client.probe(probe.id)
