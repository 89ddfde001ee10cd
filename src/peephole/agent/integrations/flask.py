"""Flask: ``got_request_exception`` is sent for every exception Flask turns into a 500.

Enabled when the application imports ``flask.signals`` (``import flask`` does).
"""

from __future__ import annotations

import sys
from typing import Any

from peephole.agent.exception_capture import capture_active

__all__ = ["install", "uninstall"]


def install() -> None:
    signals = sys.modules["flask.signals"]
    signals.got_request_exception.connect(_on_exception, weak=False)


def uninstall() -> None:
    signals = sys.modules.get("flask.signals")
    if signals is not None:
        signals.got_request_exception.disconnect(_on_exception)


def _on_exception(sender: Any, exception: Any = None, **extra: Any) -> None:
    if isinstance(exception, BaseException):
        capture_active(exception, "flask")
