"""What an application import costs while probes wait for modules that are not loaded.

While a probe waits (its module not imported yet, or its path matching no file at all), the
agent's import hook sits at the front of ``sys.meta_path`` and asks, for every module the
application imports, whether a waiting probe names that module's file. This script writes
MODULES small modules to a temporary directory, places WAITING probes on files that are never
imported (half of them pending on files that exist, half on paths that match nothing, as a
typo would), and then imports the modules ROUNDS times (each round removes them from
``sys.modules`` first, so the import system runs the finders and the module body again). It
reports the median cost of one import with no probe waiting (the hook off) and with 1 and
100 probes waiting; the difference is what the hook adds to every import. On a busy machine
that difference drowns in noise, so the last column times the hook's own question (does a
waiting probe name this file?) alone, best of ROUNDS rounds over the MODULES files.

    .venvs/pyX.Y/bin/python benchmarks/import_hook.py
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.protocol import TRACEPOINT, ProbeSpec

MODULES = 200
ROUNDS = 15
WAITING = (0, 1, 100)
BODY = "def f(x):\n    return x + 1\n"


def spec(probe_id: str, file: str) -> ProbeSpec:
    return ProbeSpec(id=probe_id, kind=TRACEPOINT, file=file, line=2, expires_at=time.time() + 3600)


def import_round(names: List[str]) -> float:
    """Seconds per import of ``names``, each imported anew."""
    for name in names:
        sys.modules.pop(name, None)
    start = time.perf_counter()
    for name in names:
        importlib.import_module(name)
    return (time.perf_counter() - start) / len(names)


def ask_round(agent: Agent, files: List[str]) -> float:
    """Seconds per question the hook asks the agent about one imported file."""
    wants = agent._watcher.wants
    start = time.perf_counter()
    for filename in files:
        wants(filename)
    return (time.perf_counter() - start) / len(files)


def measure(agent: Agent, directory: Path, names: List[str], waiting: int) -> Tuple[float, float]:
    for index in range(waiting):
        if index % 2 == 0:  # pending: the file exists on sys.path, never imported
            name = f"never_imported_{index}.py"
            (directory / name).write_text(BODY)
        else:  # matches nothing: a typo
            name = f"no/such/dir_{index}/typo_{index}.py"
        agent.set_probe(spec(f"p{index}", name))
    try:
        import_round(names)  # warm: bytecode caches written
        files = [str(directory / f"{name}.py") for name in names]
        per_import = statistics.median(import_round(names) for _ in range(ROUNDS))
        return per_import, min(ask_round(agent, files) for _ in range(ROUNDS))
    finally:
        for index in range(waiting):
            agent.remove_probe(f"p{index}")


def main() -> None:
    agent = Agent(AgentConfig(service="bench"))  # not started: no housekeeping thread
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        names = [f"bench_imported_{i}" for i in range(MODULES)]
        for name in names:
            (directory / f"{name}.py").write_text(BODY)
        sys.path.insert(0, tmp)
        importlib.invalidate_caches()
        results = {waiting: measure(agent, directory, names, waiting) for waiting in WAITING}
    base = results[0][0]
    print(f"Python {sys.version.split()[0]}: one import of a small module, median of {ROUNDS}")
    print(
        "| probes waiting | per import (us) | added by the hook (us) | the hook's question (us) |"
    )
    print("|---:|---:|---:|---:|")
    for waiting, (seconds, asking) in results.items():
        added = (seconds - base) * 1e6
        print(f"| {waiting} | {seconds * 1e6:.1f} | {added:+.1f} | {asking * 1e6:.2f} |")


if __name__ == "__main__":
    main()
