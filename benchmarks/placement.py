"""What placing and removing a probe costs the other threads of a process with a big heap.

The process holds OBJECTS live objects (small lists, which the garbage collector tracks).
A module written for the run is imported, then a probe is placed on one of its lines and
removed again, CYCLES times, on the main thread. Meanwhile a sampler thread sleeps
SAMPLE_SLEEP at a time and records how late it wakes up: a thread that wants the GIL while
placement holds it waits, and that wait is the stall the application sees. The table shows
how long placing and removing took, and the sampler's worst lateness during the cycles
against its lateness while nothing happens (the machine's own noise: on a loaded machine the
operating system's scheduling dominates it). Placing and removing are also timed in CPU time
of the placing thread (``time.thread_time``), which other processes do not inflate: a thread
that waits for the GIL cannot wait longer than placement holds it. The heap is frozen
(``gc.freeze``) after it is built, so the collector's passes over it, which any allocation of
the application triggers just the same, are not counted as placement.

For comparison, the last line times one ``gc.get_referrers`` call on the module namespace,
the heap walk placement used before the registry replaced it (agent 0.x up to issue 9): with
the GIL held all along, that is a stall of the same length for every other thread.

    .venvs/pyX.Y/bin/python benchmarks/placement.py
"""

from __future__ import annotations

import gc
import importlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.protocol import ACTIVE, ProbeSpec

OBJECTS = 2_000_000
CYCLES = 200
SAMPLE_SLEEP = 0.0005  # seconds the sampler sleeps between two readings
QUIET = 0.3  # seconds of sampling with nothing happening, for the baseline
MODULE = '''\
"""A small module of an application: a class, a few functions."""


class Order:
    def __init__(self, items):
        self.items = list(items)

    def total(self):
        amount = 0
        for price in self.items:
            amount += price
        return amount


def checkout(order, coupon=None):
    subtotal = order.total()
    discount = 0.1 if coupon else 0.0  # PROBE
    return subtotal * (1 - discount)


def report(orders):
    return [checkout(order) for order in orders]
'''


class Sampler:
    """A thread that wants the GIL every SAMPLE_SLEEP and records how late it gets it."""

    def __init__(self) -> None:
        self.lateness: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        clock = time.perf_counter
        deadline = clock() + 120  # bounded whatever happens on the main thread
        while not self._stop.is_set() and clock() < deadline:
            before = clock()
            time.sleep(SAMPLE_SLEEP)
            self.lateness.append(clock() - before - SAMPLE_SLEEP)

    def worst_since(self, start: int) -> float:
        return max(self.lateness[start:], default=0.0)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def cpu_timed(action: Callable[[], object]) -> float:
    start = time.thread_time()
    action()
    return time.thread_time() - start


def spread(values: List[float]) -> str:
    """Median, 99th percentile and worst."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{ms(statistics.median(ordered))} / {ms(p99)} / {ms(ordered[-1])}"


def main() -> None:
    heap = [[n] for n in range(OBJECTS)]
    folder = Path(tempfile.mkdtemp())
    (folder / "bench_shop.py").write_text(MODULE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("bench_shop")
    walk = timed(lambda: gc.get_referrers(vars(module)))
    gc.freeze()
    line = 1 + [text.endswith("# PROBE") for text in MODULE.splitlines()].index(True)
    agent = Agent(AgentConfig(service="bench"), sink=lambda batch: True)
    spec = ProbeSpec(id="p", kind="tracepoint", file="bench_shop.py", line=line)
    first = timed(lambda: agent.set_probe(spec))  # parses the file, claims a tool id
    agent.remove_probe("p")
    place: List[float] = []
    remove: List[float] = []
    with Sampler() as sampler:
        time.sleep(QUIET)
        quiet = list(sampler.lateness)
        start = len(sampler.lateness)
        for cycle in range(CYCLES):
            place.append(cpu_timed(lambda: agent.set_probe(spec)))
            status = agent.status("p")
            assert status is not None and status.state == ACTIVE, status
            module.checkout(module.Order([1.0, 2.0]))
            remove.append(cpu_timed(lambda: agent.remove_probe("p")))
            time.sleep(SAMPLE_SLEEP * (1 + cycle % 3))  # let samples fall at different points
        during = sampler.lateness[start:]
    agent.stop()
    print_table(
        {
            "first placement in the file (wall; parses its source)": ms(first),
            "place a probe (CPU)": spread(place),
            "remove it (CPU)": spread(remove),
            "place and remove, worst (CPU)": ms(max(a + b for a, b in zip(place, remove))),
            "other thread's lateness while placing and removing": spread(during),
            "other thread's lateness, nothing happening": spread(quiet),
            "one gc.get_referrers (the heap walk placement used to do)": ms(walk),
        }
    )
    del heap


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def print_table(rows: Dict[str, str]) -> None:
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"Python {version}, {OBJECTS:,} live objects, {CYCLES} probes placed and removed\n")
    print("| median / 99th percentile / worst | |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
