"""The client's models read every field the server sends, and expect none it does not.

A real server (uvicorn, loopback) and a real agent (in this process) produce every kind of
response the client parses: health, user, service, instance, probe with per-instance statuses,
events of each type, exception groups, source, tokens, agent keys, audit entries. For each
model, the fields the server sent (over all responses of that kind) must equal the model's
fields: a field the server added or renamed, or one the client waits for in vain, fails here
instead of showing as ``0`` or ``""`` in a terminal.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace import TracerProvider

import peephole
from peephole.client import Client
from peephole.client.models import (
    AgentKey,
    AuditEntry,
    Event,
    ExceptionGroup,
    Health,
    Instance,
    Model,
    NewProbe,
    Probe,
    ProbeInstanceStatus,
    Service,
    Source,
    Target,
    Token,
    User,
)
from server.conftest import ADMIN_TOKEN, AGENT_KEY, LiveServer, make_settings

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

T = TypeVar("T")
SERVICE = "contract-shop"
TARGET = """\
import logging


def total(items, discount):
    subtotal = sum(items)
    result = subtotal - discount
    return result


def fail(order):
    try:
        raise KeyError(order)
    except KeyError:
        logging.getLogger("contract").exception("order failed")
"""


def eventually(fetch: Callable[[], T], ready: Callable[[T], bool], what: str) -> T:
    """``fetch()`` once ``ready`` says so, within 15 seconds."""
    deadline = time.monotonic() + 15
    while True:
        value = fetch()
        if ready(value):
            return value
        assert time.monotonic() < deadline, f"never got {what}; last: {value!r}"
        time.sleep(0.05)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}",
        tmp_path,
        trace_link_template="https://traces.example/{trace_id}",
    )
    server = LiveServer(settings).start()
    try:
        with Client(server.url, ADMIN_TOKEN) as api:
            yield api
    finally:
        server.stop()


@pytest.fixture
def target(tmp_path: Path, client: Client) -> Iterator[Any]:
    """A module to probe, run by an agent connected to the server."""
    package = tmp_path / "contract_target"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shop.py").write_text(TARGET)
    sys.path.insert(0, str(tmp_path))
    peephole.start(
        service=SERVICE,
        server=client.url,
        key=AGENT_KEY,
        wait=10,
        version="1.0",
        environment="test",
        tags={"region": "eu"},
    )
    try:
        import contract_target.shop as shop

        yield shop
    finally:
        peephole.stop()
        sys.path.remove(str(tmp_path))
        for name in ("contract_target.shop", "contract_target"):
            sys.modules.pop(name, None)


def responses(client: Client, shop: Any) -> list[Model]:
    """Every kind of object the client parses, as the server sent it."""
    file = "contract_target/shop.py"
    trace = client.create_probe(
        NewProbe(
            kind="tracepoint",
            file=file,
            line=6,
            watches=["subtotal"],
            target=Target(service=SERVICE),
        )
    )
    log = client.create_probe(
        NewProbe(
            kind="logpoint",
            file=file,
            line=6,
            level="warning",
            template="total {subtotal}",
            target=Target(SERVICE),
        )
    )
    eventually(client.probes, lambda ps: all(p.statuses for p in ps), "probe statuses")
    with TracerProvider().get_tracer("contract").start_as_current_span("checkout"):
        shop.total([1, 2], 1)  # events in a trace carry its ids and a link
    shop.fail(7)
    events = eventually(
        lambda: client.events(service=SERVICE).items,
        lambda es: {e.type for e in es} == {"snapshot", "log", "exception"},
        "an event of each type",
    )
    groups = client.exceptions(SERVICE)
    token = client.create_token("ci", "viewer", expires_seconds=3600)
    key = client.create_agent_key("ci-agent", services=[SERVICE])
    found: list[Model] = [client.health(), client.me(), *client.services()]
    found += [*client.instances(SERVICE), trace, log, *client.probes(), client.probe(trace.id)]
    found += [*events, *(client.event(e.id) for e in events), *groups]
    found += [client.exception(groups[0].fingerprint), client.source(SERVICE, file)]
    found += [token, *client.tokens(), client.revoke_token(token.id or 0)]
    found += [key, *client.agent_keys(), client.revoke_agent_key(key.id or 0)]
    found += [*client.audit()]
    return found


def nested(model: Model) -> Iterator[Model]:
    """The model and the models inside it."""
    yield model
    for value in vars(model).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Model):
                yield from nested(item)


def test_every_field_the_server_sends_is_one_the_client_reads(client: Client, target: Any) -> None:
    sent: dict[type, set[str]] = defaultdict(set)
    for response in responses(client, target):
        for model in nested(response):
            sent[type(model)] |= set(model.raw)
    problems = []
    for kind, keys in sorted(sent.items(), key=lambda item: item[0].__name__):
        known = {f.name for f in dataclasses.fields(kind)} - {"raw"}
        if keys - known:
            problems.append(f"{kind.__name__}: the client does not read {sorted(keys - known)}")
        if known - keys:
            problems.append(f"{kind.__name__}: the server never sends {sorted(known - keys)}")
    assert not problems, "\n".join(problems)
    every_model = {
        Health,
        User,
        Service,
        Instance,
        Probe,
        ProbeInstanceStatus,
        Target,
        Event,
        ExceptionGroup,
        Source,
        Token,
        AgentKey,
        AuditEntry,
    }
    assert every_model <= set(sent), f"not exercised: {every_model - set(sent)}"
