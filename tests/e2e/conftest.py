"""Fixtures of the end-to-end tests: real server processes (``server_process``), and the CLI
run in this process against one real server (the CLI suite's fixtures)."""

from cli.conftest import cli, logged_in, server  # noqa: F401

from .server_process import server_process  # noqa: F401
