"""The suite's root: pytest puts this directory on ``sys.path`` for it, so every test folder
imports the shared helpers (``waiting``, ``e2e.server_process``) by the same name, also when
one folder runs alone (``pytest tests/agent`` on each interpreter)."""
