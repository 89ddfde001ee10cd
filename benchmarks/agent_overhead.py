"""What the agent costs the application, end to end, through real instrumentation.

Every scenario runs the same bounded workloads in one process, so the ratios compare like
with like on the same machine at the same moment:

- no agent;
- agent started, no probes (the target: no measurable difference);
- a probe on a line of the same function that does not run (what arming a code object costs
  the rest of it: nothing with bytecode injection; with sys.monitoring the other lines
  disable themselves on their first run);
- a probe on the hot line whose condition is false (target: at most 1 us per hit);
- a logpoint on the hot line with three expressions (target: at most 10 us per hit);
- a snapshot on a 20-frame stack whose top frame has 10 locals including a 50-item dict and
  an object with 10 fields (target: at most 50 us per hit, on the application thread);
- a global ``sys.settrace`` tracer that looks for one breakpoint line, as debuggers do
  (the reference to beat).

Workloads: a CPU-bound loop (the hot line is its body) and a call-heavy one (the hot line
is in a small function called for each item). Rates, hit limits and the CPU budget are
lifted so every hit does its full work; the sink drops what it receives.

    python benchmarks/agent_overhead.py [--repeat 5] [--scale 1.0]

Prints a Markdown table with the machine and the Python version.

``--part issue`` runs the "Speed" issue's workload instead: a probe on the last line of a
22-frame call chain with ten locals (ints, a float, a bool, a short string, a 50-item dict, an
object with ten attributes, a list), per hit: a false condition, a logpoint with four
placeholders (one an attribute), a snapshot on the application thread, and a snapshot's whole
cost (plus the CPU its encoding and sending take on the delivery thread, measured with
``time.thread_time`` around :meth:`Transport.deliver` to a loopback server that only acks).
``--part latency`` calls a request handler in a loop, without and with the agent, while a
snapshot probe fires at its default rate and a logpoint at 1,000 lines/s, the events going
through the real transport to that server; it reports p50, p99 and the maximum per call.
"""

# ruff: noqa: F841 - the snapshot target's locals are only read through its frame
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from peephole.agent.config import AgentConfig
from peephole.agent.core import Agent
from peephole.agent.delivery.transport import Transport
from peephole.protocol import ProbeSpec

HERE = os.path.abspath(__file__)
T = TypeVar("T")
UNLIMITED = 10**9


# --- workloads (the probed lines are found by their markers) --------------------------------


def cpu_bound(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7  # @cpu-hot
    if total < 0:
        total = 0  # @cpu-cold
    return total


def _price(item: int, rate: int) -> int:
    if rate < 0:
        raise ValueError("a negative rate")  # @call-cold
    taxed = item * rate // 100  # @call-hot
    return taxed


def call_heavy(n: int) -> int:
    total = 0
    for item in range(n):
        total += _price(item, 120)
    return total


class Order:
    def __init__(self) -> None:
        for index in range(10):
            setattr(self, f"field{index}", index if index % 2 else f"value {index}")


def deep(depth: int, leaf: Callable[[], T]) -> T:
    """``leaf()`` called ``depth`` frames below this one."""
    if depth:
        return deep(depth - 1, leaf)
    return leaf()


def _checkout() -> int:
    user = "ada"
    total = 150.0
    items = [1, 2, 3]
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    order = Order()
    name = "checkout"
    count = 3
    ratio = 0.5
    flags = (True, False)
    note = None
    if note is not None:
        count = 0  # @snapshot-cold
    return count  # @snapshot-hot


def snapshots(n: int) -> int:
    """``n`` calls of ``_checkout`` at the bottom of a 20-frame stack."""
    total = 0
    for _ in range(n):
        total += deep(17, _checkout)
    return total


def line_of(marker: str) -> int:
    with open(HERE) as source:
        for number, text in enumerate(source, start=1):
            if text.rstrip().endswith(f"# @{marker}"):
                return number
    raise LookupError(marker)


# --- scenarios ------------------------------------------------------------------------------


def _agent() -> Agent:
    agent = Agent(_config(), sink=lambda batch: True)
    agent.start()
    return agent


def _config(**settings: Any) -> AgentConfig:
    """Rates, hit limits and the CPU budget lifted so every hit does its full work."""
    return AgentConfig(
        service="bench",
        max_hit_limit=UNLIMITED,
        snapshot_rate=UNLIMITED,
        snapshot_process_rate=UNLIMITED,
        log_rate=UNLIMITED,
        log_process_rate=UNLIMITED,
        cpu_budget=1000.0,
        buffer_bytes=1024 * 1024,
        **settings,
    )


def _probe(kind: str, marker: str, **fields: Any) -> ProbeSpec:
    return ProbeSpec(
        id=f"{kind}-{marker}",
        kind=kind,
        file=HERE,
        line=line_of(marker),
        hit_limit=UNLIMITED,
        **fields,
    )


class Scenario:
    """A way to run a workload; ``share`` shrinks the loop for the expensive ones."""

    def __init__(
        self, name: str, probes: Callable[[str], List[ProbeSpec]], share: float = 1.0
    ) -> None:
        self.name = name
        self.probes = probes
        self.share = share


def _cold_line(marker: str) -> List[ProbeSpec]:
    return [_probe("tracepoint", marker.replace("-hot", "-cold"))]


def _false_condition(marker: str) -> List[ProbeSpec]:
    condition = {"cpu-hot": "i < 0", "call-hot": "item < 0", "snapshot-hot": "count < 0"}
    return [_probe("tracepoint", marker, condition=condition[marker])]


def _logpoint(marker: str) -> List[ProbeSpec]:
    template = {
        "cpu-hot": "i={i} total={total} n={n}",
        "call-hot": "item={item} rate={rate} taxed={item * rate}",
        "snapshot-hot": "user={user} total={total:.2f} items={len(items)}",
    }
    return [_probe("logpoint", marker, template=template[marker])]


def _snapshot(marker: str) -> List[ProbeSpec]:
    return [_probe("tracepoint", marker)]


SCENARIOS = [
    Scenario("agent started, no probes", lambda marker: []),
    Scenario("probe on an unrun line of the same function", _cold_line),
    Scenario("probe, condition false", _false_condition),
    Scenario("logpoint, 3 expressions", _logpoint, share=0.05),
    Scenario("snapshot", _snapshot, share=0.05),
]


def _settrace_reference(marker: str) -> Callable[[], None]:
    """A debugger-style global tracer looking for one breakpoint: returns its uninstaller."""
    target = line_of(marker)
    hits: List[int] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == target and frame.f_code.co_filename == HERE:
            hits.append(1)
        return tracer

    sys.settrace(tracer)
    return lambda: sys.settrace(None)


# --- timing ---------------------------------------------------------------------------------


CHUNKS = 20


def _best(work: Callable[[int], int], n: int, repeat: int) -> float:
    """Time for ``work(n)``, from the fastest of many runs of a twentieth of it each: on a
    shared machine the fastest short run is the one least disturbed by other processes."""
    chunk = max(n // CHUNKS, 1)
    best = float("inf")
    for _ in range(repeat * CHUNKS):
        started = time.perf_counter()
        work(chunk)
        best = min(best, time.perf_counter() - started)
    return best * n / chunk


WORKLOADS: List[Tuple[str, str, Callable[[int], int], int]] = [
    ("CPU-bound loop", "cpu-hot", cpu_bound, 200_000),
    ("call-heavy", "call-hot", call_heavy, 100_000),
    ("20-frame stack, 10 locals", "snapshot-hot", snapshots, 2_000),
]


def _with_probes(work: Callable[[int], int], n: int, repeat: int, probes: List[ProbeSpec]) -> float:
    agent = _agent()
    try:
        for spec in probes:
            status = agent.set_probe(spec)
            if status.state != "active":
                raise RuntimeError(f"{spec.id}: {status.state} {status.message}")
        return _timed(work, n, repeat)
    finally:
        agent.stop()


def _timed(work: Callable[[int], int], n: int, repeat: int) -> float:
    """A frame between the workload and the one holding the agent: snapshots take the locals
    of the top three frames, and the agent's own state is not what this measures."""
    return _best(work, n, repeat)


def _with_settrace(work: Callable[[int], int], n: int, repeat: int, marker: str) -> float:
    uninstall = _settrace_reference(marker)
    try:
        return _best(work, n, repeat)
    finally:
        uninstall()


def measure(repeat: int, scale: float) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for title, marker, work, count in WORKLOADS:
        full = max(int(count * scale), 10)
        work(full)  # warm up
        bases = {full: _best(work, full, repeat)}
        rows.append(
            {"workload": title, "scenario": "no agent", "seconds": bases[full], "hits": full}
        )
        for scenario in SCENARIOS:
            n = max(int(full * scenario.share), 10)
            if n not in bases:
                bases[n] = _best(work, n, repeat)
            seconds = _with_probes(work, n, repeat, scenario.probes(marker))
            rows.append(
                {
                    "workload": title,
                    "scenario": scenario.name,
                    "seconds": seconds,
                    "base": bases[n],
                    "hits": n,
                }
            )
        seconds = _with_settrace(work, full, repeat, marker)
        rows.append(
            {
                "workload": title,
                "scenario": "global sys.settrace tracer",
                "seconds": seconds,
                "base": bases[full],
                "hits": full,
            }
        )
    return rows


# --- the "Speed" issue's workload -----------------------------------------------------------


def _issue_leaf() -> int:
    user_id = 1042
    count = 3
    retries = 0
    total = 150.25
    paid = True
    name = "checkout"
    prices = {f"sku-{index}": index * 10 for index in range(50)}
    order = Order()
    items = [1, 2, 3, 4, 5]
    limit = 100
    return count + retries  # @issue-hot


# The leaf's code under another file name, where no probe is ever placed: the baseline that
# _per_hit times in turns with the probed leaf (the same bytecode, so the same work).
_unprobed_leaf = types.FunctionType(
    _issue_leaf.__code__.replace(co_filename="<unprobed copy>"), globals()
)


def issue_workload(n: int, leaf: Callable[[], int] = _issue_leaf) -> int:
    """``n`` runs of the probed line at the bottom of a 22-frame chain (21 ``deep`` frames
    and the leaf, below this loop)."""
    total = 0
    for _ in range(n):
        total += deep(20, leaf)
    return total


def unprobed_workload(n: int) -> int:
    """:func:`issue_workload` with the leaf's unprobed copy."""
    return issue_workload(n, _unprobed_leaf)


ISSUE_CONDITION = "count < 0"
ISSUE_TEMPLATE = "user {user_id} paid={paid} total={total} order={order.field1}"

_ACK_SERVER = """
import json, sys
from websockets.sync.server import serve

EVENTS = '{"type":"events","seq":'

def session(conn):
    conn.recv()
    conn.send(json.dumps({"type": "welcome", "config": None}))
    conn.send(json.dumps({"type": "probes", "probes": []}))
    for text in conn:  # the seq without parsing the batch: little CPU taken from the agent
        if text.startswith(EVENTS):
            conn.send(json.dumps({"type": "ack", "seq": int(text[len(EVENTS):].split(",")[0])}))

with serve(session, "127.0.0.1", 0, max_size=2**23) as server:
    print(server.socket.getsockname()[1], flush=True)
    server.serve_forever()
"""


class AckServer:
    """A loopback WebSocket peer that welcomes the agent and acks every batch, in its own
    process so its work is not counted against the agent's threads, reading only the
    batch's ``seq`` so it takes little CPU from the agent's on a small machine."""

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _ACK_SERVER], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        return f"ws://127.0.0.1:{self.process.stdout.readline().strip()}/agent/v1/ws"

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait(10)


@contextlib.contextmanager
def sending_transport() -> Iterator[Transport]:
    """A transport connected to an :class:`AckServer`, for calling ``deliver`` directly."""
    with AckServer() as url:
        transport = Transport(AgentConfig(service="bench", server=url))
        transport.start(Agent(AgentConfig(service="bench")))
        try:
            if not transport.wait_connected(10.0):
                raise RuntimeError("the ack server did not welcome the transport")
            yield transport
        finally:
            transport.stop()


def _per_hit(n: int, repeat: int, probe: Optional[ProbeSpec]) -> float:
    """Seconds added per hit by ``probe`` to the issue's workload: short runs of it in turns
    with as many of its unprobed copy, the fastest of each, so a machine that slows down or
    speeds up while it measures moves both alike (timing one before the other, a change of
    pace in between read as the probe's cost, or as a negative one)."""
    agent = _agent()
    try:
        if probe is not None:
            _set(agent, probe)
        chunk = max(n // CHUNKS, 1)
        issue_workload(chunk)  # warm up, and arm a sys.monitoring statement on its first run
        unprobed_workload(chunk)
        best_work = best_copy = float("inf")
        for _ in range(repeat * CHUNKS):
            started = time.perf_counter()
            unprobed_workload(chunk)
            middle = time.perf_counter()
            issue_workload(chunk)
            best_copy = min(best_copy, middle - started)
            best_work = min(best_work, time.perf_counter() - middle)
        return (best_work - best_copy) / chunk
    finally:
        agent.stop()


def _set(agent: Agent, spec: ProbeSpec) -> None:
    status = agent.set_probe(spec)
    if status.state != "active":
        raise RuntimeError(f"{spec.id}: {status.state} {status.message}")


def _captured_snapshots(count: int) -> List[Dict[str, Any]]:
    """``count`` snapshot events of the workload, as the delivery thread receives them."""
    events: List[Dict[str, Any]] = []

    def sink(batch: List[Dict[str, Any]]) -> bool:
        events.extend(batch)
        return True

    agent = Agent(_config(), sink=sink)
    agent.start()
    try:
        _set(agent, _probe("tracepoint", "issue-hot"))
        issue_workload(count)
        agent.flush(30.0)
    finally:
        agent.stop()
    return events


def _delivery_cpu(events: List[Dict[str, Any]], repeat: int, batch: int) -> float:
    """CPU seconds per event that :meth:`Transport.deliver` spends on this thread (encoding,
    framing, compressing, writing) sending ``events`` in batches of ``batch``: the best of
    ``repeat`` passes. Waiting for the acks costs no CPU and is not counted."""
    with sending_transport() as transport:
        best = float("inf")
        for _ in range(repeat):
            spent = 0.0
            for first in range(0, len(events), batch):
                started = time.thread_time()
                if not transport.deliver(events[first : first + batch]):
                    raise RuntimeError("a batch was not acknowledged")
                spent += time.thread_time() - started
            best = min(best, spent)
        return best / len(events)


def measure_issue(repeat: int, scale: float) -> List[Tuple[str, float, str]]:
    """Microseconds per hit of each measure the issue names, with its target."""
    n = max(int(200 * scale), 10)
    condition = _probe("tracepoint", "issue-hot", condition=ISSUE_CONDITION)
    logpoint = _probe("logpoint", "issue-hot", template=ISSUE_TEMPLATE)
    snapshot = _probe("tracepoint", "issue-hot")
    false_us = _per_hit(n * 10, repeat, condition) * 1e6
    log_us = _per_hit(n, repeat, logpoint) * 1e6
    snap_us = _per_hit(n, repeat, snapshot) * 1e6
    events = _captured_snapshots(120)
    size = sum(len(json.dumps(event, separators=(",", ":"))) for event in events) / len(events)
    send_us = _delivery_cpu(events, repeat, 120) * 1e6
    return [
        ("false condition", false_us, "1 us"),
        ("logpoint, 4 placeholders", log_us, "10 us"),
        ("snapshot, on the application thread", snap_us, "50 us"),
        (f"snapshot, encoding and sending ({size / 1024:.1f} KB each)", send_us, "-"),
        ("snapshot, whole cost", snap_us + send_us, "150 us"),
    ]


def issue_table(rows: List[Tuple[str, float, str]]) -> str:
    lines = [f"Machine: {machine()}", "", "| measure | per hit | target |", "|---|---:|---:|"]
    lines += [f"| {name} | {value:.2f} us | {target} |" for name, value, target in rows]
    return "\n".join(lines)


# --- latency of a probed request handler ----------------------------------------------------


def handle_request(size: int) -> int:
    """A request handler's pure-Python work (about half a millisecond at ``size`` 4000)."""
    rows = [{"id": index, "price": index * 3 % 17} for index in range(size)]
    total = sum(row["price"] for row in rows)  # @latency-log
    if total < 0:
        raise ValueError(total)
    return deep(20, lambda: total)  # @latency-snapshot


def _call_times(seconds: float, limit: int, size: int) -> List[float]:
    """Per-call wall times of the handler, called in a loop for at most ``seconds`` and at
    most ``limit`` calls."""
    times: List[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < limit:
        started = time.perf_counter()
        handle_request(size)
        ended = time.perf_counter()
        times.append(ended - started)
        if ended > deadline:
            break
    return times


def _percentiles(times: List[float]) -> Tuple[float, float, float, int]:
    ordered = sorted(times)
    return (
        ordered[len(ordered) // 2],
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        ordered[-1],
        len(ordered),
    )


def measure_latency(
    seconds: float, size: int = 4000, rounds: int = 6
) -> List[Tuple[str, Tuple[float, ...]]]:
    """The handler's latency without probes and with a snapshot probe at its default rate and
    a logpoint at 1,000 lines/s, delivered through the transport to the ack server. The two
    alternate ``rounds`` times, so a neighbour's burst on a shared machine hits both alike."""
    limit = int(seconds * 20_000)
    share = seconds / rounds
    _call_times(0.2, limit, size)  # warm up
    without: List[float] = []
    with_probes: List[float] = []
    with AckServer() as url:
        # Default rates and capture limits; the hit limit and the CPU budget lifted so the
        # probes keep firing for the whole run.
        config = AgentConfig(
            service="bench", server=url, max_hit_limit=UNLIMITED, cpu_budget=1000.0
        )
        transport = Transport(config)
        agent = Agent(config, sink=transport.deliver)
        agent.start()
        transport.start(agent)
        try:
            if not transport.wait_connected(10.0):
                raise RuntimeError("the ack server did not welcome the transport")
            snapshot = _probe("tracepoint", "latency-snapshot")
            logpoint = _probe("logpoint", "latency-log", template="total={total}", rate=1000)
            sent = 0
            for _ in range(rounds):
                agent.flush(10.0)
                without += _call_times(share, limit, size)
                _set(agent, snapshot)
                _set(agent, logpoint)
                with_probes += _call_times(share, limit, size)
                sent += sum(status.captures for status in agent.statuses())
                agent.remove_probe(snapshot.id)
                agent.remove_probe(logpoint.id)
        finally:
            agent.stop()
            transport.stop()
    title = f"snapshot 5/s + logpoint 1,000/s ({sent:,} events sent)"
    return [("no probes", _percentiles(without)), (title, _percentiles(with_probes))]


def longest_stall(events: List[Dict[str, Any]], repeat: int) -> Tuple[float, float]:
    """The longest an application thread waited to run while a batch was delivered, against
    the same thread's longest wait while the process was idle (the machine's own noise): the
    lowest of ``repeat`` tries of each. The thread wakes every 0.1 ms to note the time."""
    stop = threading.Event()
    gaps: List[float] = [0.0]

    def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            stop.wait(0.0001)
            now = time.perf_counter()
            gaps[-1] = max(gaps[-1], now - last)
            last = now

    def worst(during: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(repeat):
            gaps.append(0.0)
            during()
            stop.wait(0.002)  # the ticker notes the gap that ended with ``during``
            best = min(best, gaps[-1])
        return best

    thread = threading.Thread(target=ticker, daemon=True)
    with sending_transport() as transport:
        thread.start()
        try:
            delivering = worst(lambda: transport.deliver(events))
            idle = worst(lambda: time.sleep(0.05))
        finally:
            stop.set()
            thread.join(10.0)
    return delivering, idle


def latency_table(rows: List[Tuple[str, Tuple[float, ...]]]) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| handler | calls | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (p50, p99, worst, calls) in rows:
        lines.append(
            f"| {name} | {calls:,} | {p50 * 1e3:.3f} ms | {p99 * 1e3:.3f} ms | "
            f"{worst * 1e3:.2f} ms |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def table(rows: List[Dict[str, Any]]) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| workload | scenario | hits | time | vs no agent | added per hit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        base: Optional[float] = row.get("base")
        ratio = f"{row['seconds'] / base:.2f}x" if base else "1.00x"
        per_hit = f"{(row['seconds'] - base) / row['hits'] * 1e6:.2f} us" if base else "-"
        lines.append(
            f"| {row['workload']} | {row['scenario']} | {row['hits']:,} | "
            f"{row['seconds'] * 1e3:.1f} ms | {ratio} | {per_hit} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the loop sizes")
    parser.add_argument(
        "--part", choices=("lines", "issue", "latency"), default="lines", help="what to run"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="latency: per scenario")
    args = parser.parse_args()
    if args.part == "issue":
        print(issue_table(measure_issue(args.repeat, args.scale)))
    elif args.part == "latency":
        print(latency_table(measure_latency(args.seconds)))
        delivering, idle = longest_stall(_captured_snapshots(120), args.repeat)
        print(
            f"\nLongest wait of a thread for the GIL while 120 snapshots are delivered: "
            f"{delivering * 1e3:.2f} ms (idle: {idle * 1e3:.2f} ms)"
        )
    else:
        print(table(measure(args.repeat, args.scale)))


if __name__ == "__main__":
    main()
