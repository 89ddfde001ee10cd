"""The real Sidekick Python agent (PyPI sidekick-agent-python 0.1.2 on CPython 3.8) in a small
app, pointed at a real peephole server by its two broker settings and a peephole agent key."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from sidekick.apps import PYTHON_APP, PYTHON_ENV, AgentApp, installed, marker_line, python_app
from sidekick.live import (
    TIMEOUT,
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
from waiting import wait_until

pytestmark = [pytest.mark.server, pytest.mark.slow]

SHOP = PYTHON_APP / "shop.py"


def python_probes(app: AgentApp) -> RealApp:
    """Where the round trip puts its probes in the app."""
    return RealApp(
        app,
        "demo-python",
        "shop.py",
        marker_line(SHOP, "checkout"),
        marker_line(PYTHON_APP / "main.py", "call"),
        "shop.py",
        marker_line(SHOP, "after"),
    )


@pytest.fixture
def python38() -> str:
    return installed(PYTHON_ENV)


def test_agent_registers_with_its_identity_and_a_wrong_key_is_refused(
    tmp_path: Path, python38: str
) -> None:
    with attached(tmp_path, functools.partial(python_app, python38)) as (server, client, _):
        instance = registered(client, "demo-python", "python")
        assert re.fullmatch(r"demo-python:[0-9a-f-]{36}@.+", instance.instance_id)

        wrong = python_app(python38, server.port, "not-a-peephole-key")
        try:
            # the agent logs the refusal and stops trying; the app runs on without it
            refusal = "Handshake failed, status code: 401"  # may come before "agent started"
            wait_until(lambda: refusal in wrong.log(), TIMEOUT, "the agent's refusal")
            assert wrong.hit().startswith("done 1 ")
        finally:
            wrong.stop()
        only_instance_is(client, "demo-python", instance)


def test_tracepoint_and_logpoint_are_stored_and_stop_once_removed(
    tmp_path: Path, python38: str
) -> None:
    with attached(tmp_path, functools.partial(python_app, python38)) as (_, client, app):
        connected_instance(client, "demo-python")
        real = python_probes(app)
        snapshot, log = round_trip(client, real)

    checkout = real.checkout
    assert (snapshot.file, snapshot.line) == ("shop.py", checkout)
    top, caller = snapshot.frames[0], snapshot.frames[1]
    assert (top["file"], top["line"], top["function"]) == ("shop.py", checkout, "checkout")
    assert (caller["file"], caller["line"], caller["function"]) == ("main.py", real.call, "main")
    user, cart = local(snapshot, "user"), local(snapshot, "cart")
    assert user["t"] == "User"
    assert (field_value(user, "name"), field_value(user, "vip")) == ("alice", True)
    assert field_value(cart, "id") == "c1"
    assert local(snapshot, "total") == {"t": "int", "v": 15}
    assert local(snapshot, "discount") == {"t": "int", "v": 5}
    assert (log.message, log.line) == ("cart c2 user=alice vip=False", checkout)


def test_an_error_the_app_raises_is_stored_as_an_exception(tmp_path: Path, python38: str) -> None:
    # the variable is the only way to have the agent watch the main thread for errors; the
    # server's config (policy capture_exceptions, on by default) must leave it on
    start = functools.partial(python_app, python38, SIDEKICK_ERROR_STACK_ENABLE="true")
    with attached(tmp_path, start) as (_, client, app):
        connected_instance(client, "demo-python")
        app.hit("boom")
        found = wait_until(
            lambda: client.events(type="exception", service="demo-python").items,
            TIMEOUT,
            "the exception event",
        )
    (error,) = found
    assert (error.exc_type, error.message) == ("ValueError", "boom 1")
    top = error.frames[0]
    assert (top["line"], top["function"]) == (marker_line(SHOP, "boom"), "fail")
    assert top["file"].endswith("shop.py")


def test_a_probe_keeps_working_when_the_server_restarts(tmp_path: Path, python38: str) -> None:
    start = functools.partial(python_app, python38)
    with attached(tmp_path, start) as (server, client, app):
        connected_instance(client, "demo-python")
        across_restart(server, client, python_probes(app))


def test_a_condition_filters_hits_and_the_server_keeps_the_hit_limit(
    tmp_path: Path, python38: str
) -> None:
    with attached(tmp_path, functools.partial(python_app, python38)) as (_, client, app):
        connected_instance(client, "demo-python")
        condition_and_hit_limit(client, python_probes(app))


def test_a_line_the_agent_cannot_probe_is_an_error_with_its_reason(
    tmp_path: Path, python38: str
) -> None:
    with attached(tmp_path, functools.partial(python_app, python38)) as (_, client, _app):
        connected_instance(client, "demo-python")
        blank = 8  # between two definitions in shop.py
        assert not (SHOP.read_text().splitlines()[blank - 1]).strip()
        message = refused(client, "demo-python", "shop.py", blank)
        assert message == "line 8 is not available; try 7 or 11", message


def test_a_disabled_probe_captures_nothing_until_enabled(tmp_path: Path, python38: str) -> None:
    with attached(tmp_path, functools.partial(python_app, python38)) as (_, client, app):
        connected_instance(client, "demo-python")
        disabled_then_enabled(client, python_probes(app))
