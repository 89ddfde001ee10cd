"""Django: ``got_request_exception`` is sent, inside the ``except`` block, for every
exception Django turns into a 500.

Enabled when the application imports ``django.core.signals`` (any request handler does).
"""

from __future__ import annotations

import sys
from typing import Any

from peephole.agent.exception_capture import capture_active

__all__ = ["install", "uninstall"]

_UID = "peephole.exceptions"


def install() -> None:
    signals = sys.modules["django.core.signals"]
    signals.got_request_exception.connect(_on_exception, weak=False, dispatch_uid=_UID)


def uninstall() -> None:
    signals = sys.modules.get("django.core.signals")
    if signals is not None:
        signals.got_request_exception.disconnect(dispatch_uid=_UID)


def _on_exception(sender: Any, **kwargs: Any) -> None:
    capture_active(sys.exc_info()[1], "django")
