"""The reliability suite's real server processes (the shared helper of tests/e2e), with the
server's resident memory readable from /proc."""

from e2e.server_process import server_process  # noqa: F401
