"""The framework versions each integration supports: the ones installed here are in range
(dev.py runs this folder against the newest and the oldest supported versions on every
Python), and on a version outside it the integration stays off and says so once."""

from __future__ import annotations

import logging
import sys
from typing import Optional, Tuple

import httpx
import pytest

from integrations.capture_harness import Harness, serve_wsgi
from integrations.test_flask import make_app
from peephole.agent import integrations


@pytest.mark.parametrize("hook_point", sorted(integrations.FRAMEWORKS))
def test_the_installed_framework_is_a_supported_version(hook_point: str) -> None:
    framework = integrations.FRAMEWORKS[hook_point]
    version = integrations.installed_version(framework.distribution)
    assert version is not None, f"{framework.name} is not installed"
    assert framework.supports(version), (framework.name, version, framework.range())


def test_versions_are_read_as_numbers() -> None:
    assert integrations.installed_version("no-such-distribution-here") is None
    flask = integrations.FRAMEWORKS["flask.signals"]
    assert flask.supports((2, 3)) and flask.supports((3, 1, 3)) and flask.supports((3, 99))
    assert not flask.supports((2, 2, 5)) and not flask.supports((4,))
    assert flask.range() == ">=2.3,<4"


def test_an_unsupported_version_leaves_the_integration_off_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def old_flask(distribution: str) -> Optional[Tuple[int, ...]]:
        return (2, 2, 5) if distribution == "flask" else None

    monkeypatch.setattr(integrations, "installed_version", old_flask)
    caplog.set_level(logging.WARNING, logger="peephole")
    assert "flask.signals" in sys.modules  # enabled at once, as for an app that imported it
    harness = Harness()
    try:
        integrations.enable_frameworks()  # asked again: still off, not said again
        with serve_wsgi(make_app()) as url:
            assert httpx.get(f"{url}/orders/7").status_code == 500
        harness.exceptions.flush()
        assert [e["origin"] for e in harness.events] == ["logging"]  # Flask's own log line
    finally:
        harness.close()
    said = [r.getMessage() for r in caplog.records if r.name == "peephole"]
    assert said == [
        "peephole: Flask 2.2.5 is not supported (the integration needs >=2.3,<4): exceptions "
        "it turns into error responses are not captured; everything else works"
    ]
