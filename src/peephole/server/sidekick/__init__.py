"""Sidekick agents (Node.js, Python, Java) as peephole instances: a translator between their
broker protocol (``/app``, identity in upgrade headers, one JSON request or event a frame)
and peephole's probes, events and statuses. See ``docs/sidekick.md``."""

__all__: list[str] = []  # the modules are imported by name (route.py by server/app.py)
