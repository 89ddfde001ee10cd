"""Delivery: events leave the application's threads through a bounded buffer, and one daemon
thread sends them over the WebSocket (``buffer``, ``transport``)."""
