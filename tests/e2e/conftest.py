"""Fixtures of the end-to-end tests, shared with the suites they came from: the CLI run in
this process against one real server, and real server and agent processes."""

from cli.conftest import cli, logged_in, server  # noqa: F401
from reliability.conftest import agent_app, server_process  # noqa: F401
