"""The agent's one post-import hook: shared by integrations and probes, never patching a
loader, and the errors that heal when the module shows up later."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path
from types import CodeType, ModuleType
from typing import Iterator, List

import pytest

from conftest import Collector, state_of, tracepoint, wait_for
from peephole.agent import health, integrations
from peephole.agent.core import Agent
from peephole.agent.placement.imports import HOOK, FileWatcher
from peephole.protocol import ACTIVE, ERROR

SOURCE = "def f(x):\n    value = x + 1\n    return value\n"


@pytest.fixture
def clean_modules() -> Iterator[None]:
    before = set(sys.modules)
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def _ours(finder: object) -> bool:
    return type(finder).__module__.startswith("peephole")


def test_integrations_and_pending_probes_share_one_finder(
    agent: Agent, tmp_path: Path, clean_modules: None
) -> None:
    seen: List[ModuleType] = []
    (tmp_path / "hooked_later.py").write_text(SOURCE)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    integrations.on_import("hooked_later", seen.append)
    agent.set_probe(tracepoint("p", "hooked_later.py", 2))
    try:
        assert [f for f in sys.meta_path if _ours(f)] == [HOOK]
        module = importlib.import_module("hooked_later")
        assert seen == [module]
        assert state_of(agent, "p") == ACTIVE
        assert not HOOK.installed()
    finally:
        integrations.cancel(seen.append)


def test_a_zip_imported_module_leaves_the_shared_loader_untouched(
    agent: Agent, collector: Collector, tmp_path: Path, clean_modules: None
) -> None:
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zmod_a.py", SOURCE)
        zipped.writestr("zmod_b.py", SOURCE.replace("x + 1", "x + 2"))
    sys.path.insert(0, str(archive))
    importlib.invalidate_caches()
    agent.set_probe(tracepoint("a", "zmod_a.py", 2))
    first = importlib.import_module("zmod_a")
    assert state_of(agent, "a") == ACTIVE
    loader = first.__loader__
    assert "exec_module" not in vars(loader)
    assert first.__spec__ is not None and first.__spec__.loader is loader
    agent.set_probe(tracepoint("b", "zmod_b.py", 2))
    second = importlib.import_module("zmod_b")
    assert second.__loader__ is loader and "exec_module" not in vars(loader)
    assert state_of(agent, "b") == ACTIVE
    assert (first.f(1), second.f(1)) == (2, 3)
    assert agent.flush()
    assert [e["frames"][0]["file"] for e in collector.of("b")] == [second.__file__]
    assert [e["frames"][0]["file"] for e in collector.of("a")] == [first.__file__]


def test_a_file_missing_from_sys_path_heals_when_sys_path_is_set(
    agent: Agent, collector: Collector, tmp_path: Path, clean_modules: None
) -> None:
    """The probe came before ``sys.path[0]`` was set (a module beside the script)."""
    (tmp_path / "beside_script.py").write_text(SOURCE)
    status = agent.set_probe(tracepoint("p", "beside_script.py", 2))
    assert status.state == ERROR and "no such file" in (status.message or "")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module("beside_script")
    assert state_of(agent, "p") == ACTIVE
    module.f(1)
    assert agent.flush() and len(collector.of("p")) == 1


def test_an_error_that_heals_is_retried_by_housekeeping(
    agent: Agent, collector: Collector, tmp_path: Path, clean_modules: None
) -> None:
    path = tmp_path / "loaded_by_hand.py"
    status = agent.set_probe(tracepoint("p", str(path), 2))
    assert status.state == ERROR
    path.write_text(SOURCE)
    module = ModuleType("loaded_by_hand")  # as a plugin system or ``exec`` would
    module.__file__ = str(path)
    sys.modules["loaded_by_hand"] = module
    exec(compile(SOURCE, str(path), "exec"), vars(module))
    assert wait_for(lambda: state_of(agent, "p") == ACTIVE)
    module.f(1)
    assert agent.flush() and len(collector.of("p")) == 1


def test_a_new_version_that_does_not_compile_stays_in_error_after_a_healing_one(
    agent: Agent, tmp_path: Path, clean_modules: None
) -> None:
    """A version in an error that heals (no such file yet), replaced by one whose condition
    does not compile, must not be armed by the retry once the file appears."""
    path = tmp_path / "heals_later.py"
    assert agent.set_probe(tracepoint("p", str(path), 2)).state == ERROR
    broken = tracepoint("p", str(path), 2, condition="x ==", version=2)
    assert agent.set_probe(broken).state == ERROR
    path.write_text(SOURCE)
    module = ModuleType("heals_later")
    module.__file__ = str(path)
    sys.modules["heals_later"] = module
    exec(compile(SOURCE, str(path), "exec"), vars(module))
    agent._retry_pending()  # what housekeeping does every second
    assert state_of(agent, "p").startswith("error: expression refused")
    assert not HOOK.installed()


def test_an_error_that_cannot_heal_is_not_watched(agent: Agent) -> None:
    status = agent.set_probe(tracepoint("p", "templates/page.html", 3))
    assert status.state == ERROR
    assert not HOOK.installed()


class _Broken(FileWatcher):
    def wants(self, filename: str) -> bool:
        return filename.endswith("broken_watch.py")

    def before(self, filename: str, code: CodeType) -> CodeType:
        raise RuntimeError("bug in the agent")

    def after(self, filename: str) -> None:
        raise RuntimeError("bug in the agent")


def test_a_failing_watcher_never_fails_the_import_and_is_counted(
    tmp_path: Path, clean_modules: None
) -> None:
    (tmp_path / "broken_watch.py").write_text(SOURCE)
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    before = health.snapshot().internal_errors
    watcher = _Broken()
    HOOK.watch(watcher)
    try:
        module = importlib.import_module("broken_watch")
    finally:
        HOOK.unwatch(watcher)
    assert module.f(1) == 2
    assert health.snapshot().internal_errors == before + 2
