"""What waiting probes cost the application's imports: the matchers are made once per set of
waiting probes, and a path that matches nothing is looked for less and less often."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from manual_clock import ManualClock

from conftest import state_of, tracepoint
from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.placement import paths
from peephole.agent.placement import waiting as waiting_module
from peephole.agent.placement.waiting import LAST_RETRY_S, WaitedFiles
from peephole.protocol import ACTIVE, ERROR, PENDING, AgentPolicy

SOURCE = "def f(x):\n    return x + 1\n"
TEN_MINUTES = 600


@pytest.fixture
def idle_agent() -> Iterator[Agent]:
    """An agent with a clock the test moves and no housekeeping thread: the test ticks."""
    agent = Agent(AgentConfig(service="tests", probe_expiry=3600.0), clock=ManualClock())
    yield agent
    agent.stop()  # never started: this only removes its probes, hook and backend


@pytest.fixture
def made_matchers(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Every path matcher the agent makes, wherever it makes one."""
    made: List[str] = []
    real = paths.matcher

    def counting(wanted: str) -> Callable[[str], bool]:
        made.append(wanted)
        return real(wanted)

    monkeypatch.setattr(paths, "matcher", counting)
    monkeypatch.setattr(waiting_module, "matcher", counting)
    return made


def test_imports_while_probes_wait_do_not_remake_the_matchers(
    idle_agent: Agent, module_dir: Path, made_matchers: List[str]
) -> None:
    (module_dir / "waited_for.py").write_text(SOURCE)
    idle_agent.set_probe(tracepoint("pending", "waited_for.py", 2))
    idle_agent.set_probe(tracepoint("typo", "no/such/place/waited_four.py", 2))
    idle_agent.set_probe(tracepoint("absolute", str(module_dir / "other.py"), 2))
    assert state_of(idle_agent, "pending") == PENDING
    names = [f"imported_while_waiting_{i}" for i in range(30)]
    for name in names:
        (module_dir / f"{name}.py").write_text(SOURCE)
    importlib.invalidate_caches()
    before = len(made_matchers)
    for name in names:
        importlib.import_module(name)
    assert len(made_matchers) == before  # not one more for 30 imports (was 3 per import)
    importlib.import_module("waited_for")
    assert state_of(idle_agent, "pending") == ACTIVE


def test_a_path_that_matches_nothing_is_looked_for_less_and_less_often(
    idle_agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: List[str] = []
    real = paths.find_on_sys_path

    def counting(wanted: str) -> object:
        walks.append(wanted)
        return real(wanted)

    monkeypatch.setattr(paths, "find_on_sys_path", counting)
    assert idle_agent.set_probe(tracepoint("typo", "shop/crat.py", 2)).state == ERROR
    clock = idle_agent.clock
    assert isinstance(clock, ManualClock)
    for _ in range(TEN_MINUTES):  # what housekeeping does every second
        clock.advance(1.0)
        idle_agent._tick()
    # Placed, then 1, 2, 4, 8, 16, 32 s apart, then once a minute: 16 (was 601, once a second).
    assert len(walks) <= 16
    assert state_of(idle_agent, "typo").startswith("error: no such file")
    walks.clear()
    for _ in range(int(LAST_RETRY_S) + 1):
        clock.advance(1.0)
        idle_agent._tick()
    assert len(walks) == 1  # once a minute at most, for the probe's whole life


def _backed_off(agent: Agent, clock: ManualClock) -> None:
    for _ in range(40):
        clock.advance(1.0)
        agent._tick()


def test_a_change_of_sys_path_looks_again_at_once(
    idle_agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = idle_agent.clock
    assert isinstance(clock, ManualClock)
    (tmp_path / "beside_script.py").write_text(SOURCE)
    assert idle_agent.set_probe(tracepoint("p", "beside_script.py", 2)).state == ERROR
    _backed_off(idle_agent, clock)
    monkeypatch.syspath_prepend(str(tmp_path))
    clock.advance(1.0)
    idle_agent._tick()
    assert state_of(idle_agent, "p") == PENDING  # found on sys.path: waits for the import


def test_an_import_of_the_same_file_name_looks_again_at_once(
    idle_agent: Agent, module_dir: Path
) -> None:
    """A probe ``lib/same_name.py`` backed off; ``same_name.py`` (another folder) is imported:
    the probe tries again at the next tick, and stays in error as that file is not its."""
    clock = idle_agent.clock
    assert isinstance(clock, ManualClock)
    assert idle_agent.set_probe(tracepoint("p", "lib/same_name.py", 2)).state == ERROR
    _backed_off(idle_agent, clock)
    retries = idle_agent._retries
    assert not retries.due(idle_agent._probes["p"])
    (module_dir / "same_name.py").write_text(SOURCE)
    importlib.invalidate_caches()
    importlib.import_module("same_name")
    assert retries.due(idle_agent._probes["p"])


def test_waited_files_match_as_paths_do(tmp_path: Path) -> None:
    files = WaitedFiles()
    waited = ["shop/cart.py", "./a//b.py", str(tmp_path / "x.py")]
    assert files.update(waited)
    assert not files.update(reversed(waited))  # the same set: the matchers stay
    assert files.builds == 1
    for filename in ["/srv/app/shop/cart.py", "shop/cart.py", "C:\\app\\shop\\cart.py"]:
        assert files.wants(filename)
        assert paths.path_matches("shop/cart.py", filename)
    assert files.wants("/srv/a/b.py")
    assert not files.wants("/srv/app/myshop/cart.py")
    assert files.named("/srv/app/myshop/cart.py")
    assert files.wants(str(tmp_path / "x.py"))
    assert not files.named(str(tmp_path / "y.py"))
    assert files.update(waited[:1]) and not files.wants("/srv/a/b.py")


def test_a_policy_reaches_a_probe_whose_error_may_heal(idle_agent: Agent, module_dir: Path) -> None:
    """A probe in "no such file" when the policy came must not arm later with the
    expressions it compiled before the policy redacted a name they read."""
    spec = tracepoint("p", "heals_under_policy.py", 2, watches=["ticket"])
    assert idle_agent.set_probe(spec).state == ERROR
    idle_agent.set_policy(AgentPolicy(redact_names=["ticket"]))
    assert state_of(idle_agent, "p").startswith("error: expression refused")
    (module_dir / "heals_under_policy.py").write_text("def f(ticket):\n    return ticket\n")
    importlib.invalidate_caches()
    importlib.import_module("heals_under_policy")
    clock = idle_agent.clock
    assert isinstance(clock, ManualClock)
    clock.advance(LAST_RETRY_S)
    idle_agent._tick()
    assert state_of(idle_agent, "p").startswith("error: expression refused")
