"""Sidekick agents (Node.js, Python, Java) as peephole instances: a translator between their
broker protocol (``/app``, identity in upgrade headers, one JSON request or event a frame)
and peephole's probes, events and statuses. See ``docs/sidekick.md``."""
