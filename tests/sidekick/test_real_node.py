"""The real Sidekick Node.js agent (npm @runsidekick/sidekick-agent-nodejs 0.0.8) in a real
Node app, pointed at a real peephole server by its two broker settings and a peephole agent key."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from sidekick.apps import NODE_APP, NODE_ENV, AgentApp, installed, marker_line, node_app
from sidekick.live import (
    RealApp,
    across_restart,
    attached,
    condition_and_hit_limit,
    connected_instance,
    disabled_then_enabled,
    field_value,
    local,
    only_instance_is,
    refused,
    registered,
    round_trip,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

APP = NODE_APP / "app.js"


def node_probes(app: AgentApp) -> RealApp:
    """Where the round trip puts its probes in the app."""
    return RealApp(
        app,
        "demo-node",
        "app.js",
        marker_line(APP, "checkout"),
        marker_line(APP, "call"),
        "app.js",
        marker_line(APP, "after"),
    )


@pytest.fixture
def node_modules() -> str:
    return installed(NODE_ENV)


def test_agent_registers_with_its_identity_and_a_wrong_key_is_refused(
    tmp_path: Path, node_modules: str
) -> None:
    with attached(tmp_path, functools.partial(node_app, node_modules)) as (server, client, app):
        assert app.started == "agent started", app.log()
        instance = registered(client, "demo-node", "nodejs")
        assert re.fullmatch(r"\d+:[0-9a-f-]{36}@.+", instance.instance_id), instance.instance_id

        wrong = node_app(node_modules, server.port, "not-a-peephole-key")
        try:
            # the agent gives up at once on a 401 to its first connection
            assert wrong.started.startswith("agent failed"), wrong.log()
            assert "401" in wrong.log()
        finally:
            wrong.stop()
        only_instance_is(client, "demo-node", instance)


def test_tracepoint_and_logpoint_are_stored_and_stop_once_removed(
    tmp_path: Path, node_modules: str
) -> None:
    with attached(tmp_path, functools.partial(node_app, node_modules)) as (_, client, app):
        connected_instance(client, "demo-node")
        real = node_probes(app)
        snapshot, log = round_trip(client, real)

    checkout = real.checkout
    assert (snapshot.file, snapshot.line) == ("app.js", checkout)
    top, caller = snapshot.frames[0], snapshot.frames[1]
    assert (top["line"], top["function"]) == (checkout, "checkout")
    assert (caller["line"], caller["function"]) == (real.call, "handle")  # 0-based on the wire
    user, cart = local(snapshot, "user"), local(snapshot, "cart")
    assert (field_value(user, "name"), field_value(user, "vip")) == ("alice", True)
    assert field_value(cart, "id") == "c1"
    assert local(snapshot, "total")["v"] == 15
    assert local(snapshot, "discount")["v"] == 5
    assert (log.message, log.line) == ("cart c2 user=alice vip=false", checkout)


def test_a_probe_keeps_working_when_the_server_restarts(tmp_path: Path, node_modules: str) -> None:
    start = functools.partial(node_app, node_modules)
    with attached(tmp_path, start) as (server, client, app):
        connected_instance(client, "demo-node")
        across_restart(server, client, node_probes(app))


def test_a_script_the_agent_has_not_loaded_is_an_error(tmp_path: Path, node_modules: str) -> None:
    with attached(tmp_path, functools.partial(node_app, node_modules)) as (_, client, _app):
        connected_instance(client, "demo-node")
        message = refused(client, "demo-node", "nope.js", 3)
        assert "nope.js on line 3" in message and "2050" in message, message


def test_a_condition_filters_hits_and_the_server_keeps_the_hit_limit(
    tmp_path: Path, node_modules: str
) -> None:
    with attached(tmp_path, functools.partial(node_app, node_modules)) as (_, client, app):
        connected_instance(client, "demo-node")
        condition_and_hit_limit(client, node_probes(app))


def test_a_disabled_probe_captures_nothing_until_enabled(tmp_path: Path, node_modules: str) -> None:
    with attached(tmp_path, functools.partial(node_app, node_modules)) as (_, client, app):
        connected_instance(client, "demo-node")
        disabled_then_enabled(client, node_probes(app))
