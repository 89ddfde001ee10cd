"""The peephole server: the broker between agents and people (REST, WebSockets, storage)."""
