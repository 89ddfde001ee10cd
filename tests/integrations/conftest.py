"""Fixtures for the framework tests, and which framework versions a run tests (dev.py runs
this folder against the newest and the oldest supported ones on every Python)."""

from __future__ import annotations

from typing import Iterator

import pytest

from integrations.capture_harness import Harness
from peephole.agent.integrations import FRAMEWORKS, installed_version


def pytest_report_header() -> str:
    found = []
    for framework in FRAMEWORKS.values():
        version = installed_version(framework.distribution)
        found.append(f"{framework.name} {'.'.join(map(str, version or ())) or 'missing'}")
    return "frameworks: " + ", ".join(found)


@pytest.fixture
def capturing() -> Iterator[Harness]:
    """A real agent with exception capture installed, stopped after the test."""
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()
