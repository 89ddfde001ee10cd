"""Counters for ``/metrics`` in the Prometheus text format (written by hand: a few lines)."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Metrics"]


@dataclass
class Metrics:
    """Totals since start; gauges are passed to :meth:`render` by whoever knows them."""

    events_received_total: int = 0
    events_stored_total: int = 0
    events_dropped_by_agents_total: int = 0
    events_refused_total: int = 0  # for probes never sent to the connection they came on
    agent_connections_total: int = 0
    agent_messages_total: int = 0
    agent_messages_rejected_total: int = 0
    agents_disconnected_total: int = 0  # too slow, or their credential was revoked
    probe_pushes_total: int = 0
    events_pruned_total: int = 0

    def render(self, gauges: dict[str, float]) -> str:
        lines = []
        for item in fields(self):
            name = f"peephole_{item.name}"
            lines += [f"# TYPE {name} counter", f"{name} {getattr(self, item.name)}"]
        for key, value in sorted(gauges.items()):
            name = f"peephole_{key}"
            lines += [f"# TYPE {name} gauge", f"{name} {value}"]
        return "\n".join(lines) + "\n"
