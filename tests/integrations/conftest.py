"""Fixtures for the framework tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from integrations.capture_harness import Harness


@pytest.fixture
def capturing() -> Iterator[Harness]:
    """A real agent with exception capture installed, stopped after the test."""
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()
