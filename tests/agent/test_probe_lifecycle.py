"""Probe states through the Agent API: pending, active, error, expired, done, disabled,
updates, removal and statuses."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
from targets import shop

from conftest import (
    SHOP_PATH,
    Collector,
    logpoint,
    shop_line,
    state_of,
    tracepoint,
    wait_for,
)
from peephole.agent.core import Agent
from peephole.agent.placement.imports import HOOK
from peephole.protocol import ACTIVE, DISABLED, DONE, ERROR, EXPIRED, PENDING, ProbeStatus

LATE_SOURCE = "def late(x):\n    doubled = x * 2\n    return doubled\n"


@pytest.fixture
def late_dir(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [n for n in sys.modules if n.startswith("latecomer")]:
        del sys.modules[name]


def _write_late(folder: Path, name: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(LATE_SOURCE)
    importlib.invalidate_caches()
    return path


def test_a_probe_waits_for_its_module_and_activates_at_import(
    agent: Agent, collector: Collector, late_dir: Path
) -> None:
    _write_late(late_dir, "latecomer_a")
    status = agent.set_probe(tracepoint("late", "latecomer_a.py", 2))
    assert status.state == PENDING
    assert status.message and "latecomer_a.py" in status.message
    assert any(finder is HOOK for finder in sys.meta_path)
    module = importlib.import_module("latecomer_a")
    assert state_of(agent, "late") == ACTIVE
    # Nothing pending: the import system is left as it was.
    assert not any(finder is HOOK for finder in sys.meta_path)
    assert module.late(21) == 42
    assert collector.wait(1, probe_id="late")
    assert collector.of("late")[0]["frames"][0]["function"].endswith("late")


def test_a_module_loaded_without_the_import_system_is_found_by_housekeeping(
    agent: Agent, collector: Collector, late_dir: Path
) -> None:
    path = _write_late(late_dir, "latecomer_b")
    assert agent.set_probe(tracepoint("late", str(path), 2)).state == PENDING
    spec = importlib.util.spec_from_file_location("latecomer_b", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["latecomer_b"] = module
    spec.loader.exec_module(module)
    assert wait_for(lambda: state_of(agent, "late") == ACTIVE)
    module.late(1)
    assert collector.wait(1, probe_id="late")


def test_hit_limit_ends_in_done_and_restores_the_code(agent: Agent, collector: Collector) -> None:
    original = shop.Cart.add.__code__
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=3))
    cart = shop.Cart("ann")
    for price in range(10):
        cart.add(float(price))
    agent.flush()
    assert len(collector.of("p")) == 3
    status = agent.status("p")
    assert status is not None and status.state == DONE and status.captures == 3
    assert "hit limit" in (status.message or "")
    assert wait_for(lambda: not agent.backend.armed_codes())  # type: ignore[union-attr]
    assert shop.Cart.add.__code__ is original


def test_tracepoints_default_to_the_configured_hit_limit(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(tracepoint_hit_limit=4, snapshot_rate=1000.0, cpu_budget=1.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method")))
    cart = shop.Cart("ann")
    for price in range(20):
        cart.add(float(price))
    agent.flush()
    assert len(collector.of("p")) == 4


def test_hit_limit_is_capped_by_the_configured_maximum(
    make_agent: Callable[..., Agent], collector: Collector
) -> None:
    agent = make_agent(max_hit_limit=2, snapshot_rate=1000.0, cpu_budget=1.0)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=500))
    cart = shop.Cart("ann")
    for price in range(5):
        cart.add(float(price))
    agent.flush()
    assert len(collector.of("p")) == 2


def test_logpoints_have_no_hit_limit_by_default(agent: Agent, collector: Collector) -> None:
    agent.set_probe(logpoint("log", SHOP_PATH, shop_line("method"), "price={price}"))
    cart = shop.Cart("ann")
    for price in range(30):
        cart.add(float(price))
    agent.flush()
    assert [e["message"] for e in collector.of("log")] == [f"price={p:.1f}" for p in range(30)]


def test_expiry(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), expires_at=time.time() + 0.3))
    shop.Cart("a").add(1.0)
    assert wait_for(lambda: state_of(agent, "p") == EXPIRED, timeout=5)
    assert wait_for(lambda: not agent.backend.armed_codes())  # type: ignore[union-attr]
    shop.Cart("a").add(1.0)
    agent.flush()
    assert len(collector.of("p")) == 1


def test_already_expired_and_disabled_probes_are_not_armed(agent: Agent) -> None:
    past = agent.set_probe(
        tracepoint("old", SHOP_PATH, shop_line("method"), expires_at=time.time() - 1)
    )
    off = agent.set_probe(tracepoint("off", SHOP_PATH, shop_line("method"), enabled=False))
    assert (past.state, off.state) == (EXPIRED, DISABLED)
    assert agent.backend is None or not agent.backend.armed_codes()


def test_default_expiry_comes_from_config(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(probe_expiry=0.2)
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method")))
    assert wait_for(lambda: state_of(agent, "p") == EXPIRED, timeout=5)


def test_update_to_a_new_version_moves_the_probe(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method")))
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("total-return"), version=2))
    shop.Cart("a").add(1.0)
    shop.total([1.0])
    agent.flush()
    events = collector.of("p")
    assert [(e["line"], e["probe_version"]) for e in events] == [(shop_line("total-return"), 2)]
    status = agent.status("p")
    assert status is not None and status.version == 2


def test_the_same_spec_again_keeps_the_probe_and_its_counters(agent: Agent) -> None:
    spec = tracepoint("p", SHOP_PATH, shop_line("method"))
    agent.set_probe(spec)
    shop.Cart("a").add(1.0)
    assert agent.set_probe(spec).hits == 1


def test_remove_and_sync(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("a", SHOP_PATH, shop_line("method")))
    agent.set_probe(tracepoint("b", SHOP_PATH, shop_line("total-return")))
    assert agent.remove_probe("a") is True
    assert agent.remove_probe("a") is False
    agent.sync_probes([tracepoint("c", SHOP_PATH, shop_line("static-method"))])
    assert sorted(s.probe_id for s in agent.statuses()) == ["c"]
    shop.Cart("a").add(1.0)
    shop.total([1.0])
    shop.Cart.with_tax(1.0)
    agent.flush()
    assert {e["probe_id"] for e in collector.events} == {"c"}


def test_a_false_condition_counts_hits_without_events(agent: Agent, collector: Collector) -> None:
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), condition="price > 100"))
    cart = shop.Cart("ann")
    for price in (1.0, 500.0, 2.0):
        cart.add(price)
    agent.flush()
    assert [e["frames"][0]["locals"]["price"]["v"] for e in collector.of("p")] == [500.0]
    status = agent.status("p")
    assert status is not None and (status.hits, status.captures) == (3, 1)


def test_a_failing_condition_is_false_and_reported_once(agent: Agent, collector: Collector) -> None:
    reports: List[List[ProbeStatus]] = []
    agent.on_status = reports.append
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), condition="price.missing > 1"))
    cart = shop.Cart("ann")
    for price in range(5):
        cart.add(float(price))
    assert wait_for(lambda: any(s.message for batch in reports for s in batch))
    status = agent.status("p")
    assert status is not None
    assert status.state == ACTIVE and status.condition_errors == 5
    assert "missing" in (status.message or "")
    messages = {s.message for batch in reports for s in batch if s.message}
    assert len(messages) == 1
    agent.flush()
    assert collector.of("p") == []


@pytest.mark.parametrize(
    "fields",
    [
        {"condition": "price >"},
        {"watches": ["__import__('os')"]},
        {"watches": ["password"]},
    ],
    ids=["syntax", "import", "redacted-name"],
)
def test_a_refused_expression_is_an_error_on_the_probe(
    agent: Agent, fields: Dict[str, str]
) -> None:
    status = agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), **fields))
    assert status.state == ERROR
    assert status.message and status.message.startswith("expression refused")
    assert agent.backend is None or not agent.backend.armed_codes()
    assert shop.Cart("a").add(1.0) == 1


@pytest.mark.parametrize(
    ("file", "line", "reason"),
    [
        ("targets/shop.py", 2, "no code at line 2"),
        ("targets/shop.py", 3, "module-level"),
        ("templates/cart.html", 3, "template"),
        ("nowhere/missing_module_x.py", 3, "no such file"),
    ],
)
def test_bad_locations_are_errors_on_the_probe(
    agent: Agent, file: str, line: int, reason: str
) -> None:
    status = agent.set_probe(tracepoint("p", file, line))
    assert status.state == ERROR
    assert reason in (status.message or "")


def test_set_policy_applies_redaction_to_running_probes(agent: Agent, collector: Collector) -> None:
    from peephole.protocol import AgentPolicy

    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), watches=["price"]))
    shop.Cart("ann").add(1.0)
    agent.set_policy(AgentPolicy(redact_names=["price"]))
    status = agent.status("p")
    assert status is not None and status.state == ERROR  # its watch now reads a secret
    agent.set_probe(tracepoint("q", SHOP_PATH, shop_line("method")))
    shop.Cart("ann").add(2.0)
    agent.flush()
    (event,) = collector.of("q")
    assert event["frames"][0]["locals"]["price"].get("cut") == "redacted"


def test_status_reports_state_changes_and_counters(agent: Agent) -> None:
    reports: List[List[ProbeStatus]] = []
    agent.on_status = reports.append
    agent.set_probe(tracepoint("p", SHOP_PATH, shop_line("method"), hit_limit=2))
    assert wait_for(lambda: any(s.state == ACTIVE for b in reports for s in b))
    shop.Cart("a").add(1.0)
    shop.Cart("a").add(1.0)
    assert wait_for(lambda: any(s.state == DONE for b in reports for s in b))
    done = [s for b in reports for s in b if s.state == DONE][-1]
    assert (done.hits, done.captures) == (2, 2)
    assert done.time_ns > 0
