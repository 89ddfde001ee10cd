"""A bounded event buffer between application threads and the sink.

Application threads only append under a short lock; a daemon thread hands batches to the
sink. When the buffer is over its byte budget the oldest events go first, and are counted,
so a slow or absent server costs memory that is known in advance and never blocks the app.

At exit the buffer is put in the order that matters most (:meth:`EventBuffer.prioritize`):
snapshots and exceptions before log lines, and the events of rare probes before those of a
flooding one, so a short exit budget sends the last snapshot rather than the 100,000th log
line; what is still queued when the budget ends is counted as abandoned.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Counter, Deque, Dict, List, Optional, Tuple

from peephole.agent.clock import REAL
from peephole.agent.health import internal_error

__all__ = ["MAX_BATCH_EVENTS", "EventBuffer", "Sink"]

Event = Dict[str, Any]
Sink = Callable[[List[Event]], Optional[bool]]

MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
MAX_BACKOFF = 5.0
GATHER_SECONDS = 0.05  # after the first event, wait this long for more to share the batch
LOG = "log"  # the event type sent last at exit


class EventBuffer:
    """Events waiting for delivery, at most ``max_bytes`` of them by estimated size."""

    def __init__(
        self,
        max_bytes: int,
        sink: Optional[Sink] = None,
        on_drop: Optional[Callable[[Event], None]] = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.sink = sink
        self.on_drop = on_drop
        self.dropped = 0
        self._init_state()

    def _init_state(self) -> None:
        self._items: Deque[Tuple[Event, int]] = collections.deque()
        self._bytes = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._draining = False  # at exit: send at once, no waiting for a batch to fill
        self._stopped = threading.Event()  # wakes a backoff sleep early
        self._thread: Optional[threading.Thread] = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, event: Event, size: int) -> None:
        """Queue one event; never blocks beyond a short lock, never raises."""
        dropped: Optional[List[Event]] = None  # made only when over budget: rare
        with self._lock:
            items = self._items
            items.append((event, size))
            self._bytes += size
            if self._bytes > self.max_bytes:
                dropped = []
                while self._bytes > self.max_bytes and items:
                    old, old_size = items.popleft()
                    self._bytes -= old_size
                    dropped.append(old)
            if len(items) == 1:  # the thread waits only when the buffer is empty
                self._changed.notify()
        if dropped is not None:
            self._count_drops(dropped)

    def _count_drops(self, dropped: List[Event]) -> None:
        if not dropped:
            return
        self.dropped += len(dropped)
        if self.on_drop is not None:
            for event in dropped:
                try:
                    self.on_drop(event)
                except Exception as exc:
                    internal_error("counting a dropped event", exc)

    # --- delivery ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = False
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="peephole-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout``, then stop the thread."""
        self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was handed to the sink and accepted."""
        deadline = REAL.monotonic() + timeout
        with self._lock:
            while self._items or self._in_flight:
                remaining = deadline - REAL.monotonic()
                if remaining <= 0 or self._thread is None or self.sink is None:
                    return False
                self._changed.wait(min(remaining, 0.05))
            return True

    def prioritize(self) -> None:
        """Put what matters most first and stop waiting for batches to fill (at exit):
        snapshots and exceptions, then log lines; within each, the probes with the fewest
        queued events first; otherwise the order they came in."""
        with self._lock:
            self._draining = True
            per_probe: Counter[Any] = collections.Counter(
                event.get("probe_id") for event, _ in self._items
            )
            ordered = sorted(
                self._items,
                key=lambda item: (
                    item[0].get("type") == LOG,
                    per_probe[item[0].get("probe_id")],
                ),
            )  # a stable sort: arrival order within each rank
            self._items = collections.deque(ordered)
            self._changed.notify_all()
        self._stopped.set()  # cut a gathering wait short

    def abandon(self) -> List[Event]:
        """Give up on the events never sent (at exit): empty the queue and return them. A
        batch in flight was sent; the server stores it even if its ack comes too late."""
        with self._lock:
            abandoned = [event for event, _ in self._items]
            self._items.clear()
            self._bytes = 0
        return abandoned

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's events and its (dead) thread and locks."""
        self.dropped = 0
        self._init_state()

    def _take_batch(self) -> List[Tuple[Event, int]]:
        batch: List[Tuple[Event, int]] = []
        size = 0
        while self._items and len(batch) < MAX_BATCH_EVENTS:
            if batch and size + self._items[0][1] > MAX_BATCH_BYTES:
                break
            item = self._items.popleft()
            size += item[1]
            batch.append(item)
        self._bytes -= size
        self._in_flight = len(batch)
        return batch

    def _give_back(self, batch: List[Tuple[Event, int]]) -> None:
        """Put an undelivered batch back in front, dropping the oldest if over budget."""
        dropped: List[Event] = []
        with self._lock:
            self._items.extendleft(reversed(batch))
            self._bytes += sum(size for _, size in batch)
            while self._bytes > self.max_bytes and self._items:
                old, old_size = self._items.popleft()
                self._bytes -= old_size
                dropped.append(old)
            self._in_flight = 0
            self._changed.notify_all()
        self._count_drops(dropped)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._lock:
                while not self._items and not self._stopping:
                    self._changed.wait(1.0)
                if self._stopping:
                    return
                gather = len(self._items) < MAX_BATCH_EVENTS
            # Waking for every event would take the GIL from the application once per hit:
            # a short wait lets a batch fill, unless one is already full.
            if gather and not self._draining:
                self._stopped.wait(GATHER_SECONDS)
            with self._lock:
                batch = self._take_batch()
            sink = self.sink
            try:
                delivered = sink is not None and sink([event for event, _ in batch]) is not False
            except Exception as exc:
                internal_error("the event sink", exc)
                delivered = False
            if delivered:
                backoff = 0.0
                with self._lock:
                    self._in_flight = 0
                    self._changed.notify_all()
                continue
            self._give_back(batch)
            backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
            self._stopped.wait(backoff)
