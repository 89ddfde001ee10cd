"""The agent's own failures are never silent: counted, logged once on the ``peephole``
logger (never printed), and reported to the server with the instance status."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List

import pytest
from agent_gateway import Gateway
from targets import shop

from conftest import SHOP_PATH, Collector, shop_line, tracepoint, wait_for
from peephole.agent import health
from peephole.agent.core import Agent
from peephole.agent.launch import start_agent
from peephole.agent.placement.instrument import new_backend
from peephole.agent.placement.locate import locate
from peephole.agent.safe.capture import Capturer


def _broken_capture(*args: Any, **kwargs: Any) -> Dict[str, Any]:
    raise RuntimeError("capture broke")


def _errors_logged(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "peephole"
        and "internal error" in r.getMessage()
        and "probe hit" in r.getMessage()
    ]


def test_a_failing_hit_is_counted_logged_once_and_never_printed(
    make_agent: Callable[..., Agent],
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG, logger="peephole")
    before = health.snapshot().internal_errors
    monkeypatch.setattr(Capturer, "frames", _broken_capture)
    agent = make_agent(snapshot_rate=1000.0, snapshot_process_rate=1000.0, cpu_budget=1.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=100))
    cart = shop.Cart("ann")
    for price in range(5):
        cart.add(float(price))  # the application never sees the agent's failure
    report = health.snapshot()
    assert report.internal_errors == before + 5
    assert report.last_internal_error == "probe hit: RuntimeError: capture broke"
    assert wait_for(lambda: len(_errors_logged(caplog)) >= 1)
    for _ in range(3):
        cart.add(1.0)
    agent.statuses()
    assert wait_for(lambda: health.snapshot().internal_errors == before + 8)
    [message] = _errors_logged(caplog)  # once per place, not per failure
    assert "probe hit: RuntimeError: capture broke" in message
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    assert capsys.readouterr() == ("", "")
    assert collector.of("p") == []


def test_internal_errors_reach_the_server_with_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Capturer, "frames", _broken_capture)
    with Gateway(
        probes=[{"id": "p", "kind": "tracepoint", "file": SHOP_PATH, "line": shop_line("method")}]
    ) as gateway:
        agent = start_agent(server=gateway.url, key="test-key", wait=10, capture_exceptions=False)
        try:
            shop.Cart("bob").add(2.0)
            count = health.snapshot().internal_errors

            def reported() -> Any:
                return [
                    m["agent"]
                    for m in gateway.sessions[0].of_type("status")
                    if m["agent"]["internal_errors"] == count
                ]

            [report, *_] = gateway.wait_for(reported)
            assert report["last_internal_error"] == "probe hit: RuntimeError: capture broke"
        finally:
            agent.stop()


def test_a_hook_that_raises_in_the_instrumentation_is_counted() -> None:
    backend = new_backend()
    line = shop_line("method")

    def failing_hook(frame: Any) -> None:
        raise LookupError("hook broke")

    resolution = locate(SHOP_PATH, line, backend.instructions, backend.unwrap)
    before = health.snapshot().internal_errors
    try:
        for target in resolution.targets:
            backend.arm(target, resolution.index, failing_hook)
        shop.Cart("eve").add(3.0)  # the application carries on
    finally:
        for target in resolution.targets:
            backend.disarm(target, failing_hook)
        backend.close()
    report = health.snapshot()
    assert report.internal_errors == before + 1
    assert (report.last_internal_error or "").endswith("LookupError: hook broke")
