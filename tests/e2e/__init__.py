"""End-to-end tests: a real server process and a real agent (or the real CLI) together."""
