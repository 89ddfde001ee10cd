"""What a Sidekick agent says about its probes, as peephole probe states.

The agent answers each request (``erroneous`` with a message), reports late install
failures (Python, when the module is imported) and failed or rate-limited hits as events,
and lists the probes it holds in ``ApplicationStatusEvent`` (every 60 s and after every
change): that list is the only sign a probe is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from peephole import protocol
from peephole.agent.safe.redaction import Redactor, mask_text
from peephole.server.sidekick.events import bare_id

__all__ = [
    "EXCEPTION_NOTICES",
    "Change",
    "error_text",
    "event_change",
    "event_kind",
    "listed",
    "response_change",
    "same_file",
    "where",
]

ALREADY_EXISTS = (2000, 3000)  # a put the agent already holds: it has the probe
LINE_NOT_AVAILABLE = re.compile(
    r"line (\d+) is not available\b.*?\btry lines? ([\d ,]+(?:(?:or|and) \d+)?)", re.I | re.S
)
INSTALL_FAILED = ("PutTracePointFailedEvent", "PutLogPointFailedEvent")
HIT_FAILED = ("TracePointSnapshotFailedEvent", "LogPointFailedEvent")
RATE_LIMITED = (
    "ProbeRateLimitEvent",
    "TracePointRateLimitEvent",
    "LogPointRateLimitEvent",
)
EXCEPTION_NOTICES = ("ErrorStackSnapshotFailedEvent", "ErrorStackRateLimitEvent")  # no probe
THROTTLED_MESSAGE = (
    "over the agent's hits a minute for one probe; later hits this minute are dropped"
)
MAX_MESSAGE = 500


@dataclass
class Change:
    """What an agent message changes for one probe: a state (None: keep it), its message,
    and whether it counts a failed hit (a condition or capture error)."""

    state: Optional[str]
    message: Optional[str] = None
    failed_hit: bool = False


def error_text(frame: dict[str, Any], redactor: Optional[Redactor] = None) -> str:
    """The agent's error message, said the peephole way where it is a known one:
    Python's "Line 8 is not available in /srv/shop.py for tracepoint. Try lines 7 or 12"
    becomes "line 8 is not available; try 7 or 12"; masked under ``redactor`` (or the
    built-in rules), as it is shown and logged."""
    message = mask_text(str(frame.get("errorMessage") or "").strip(), redactor)
    found = LINE_NOT_AVAILABLE.search(message)
    if found is not None:
        return f"line {found.group(1)} is not available; try {found.group(2).strip()}"
    code = frame.get("errorCode")
    if not message:
        message = "the agent refused the probe"
    if isinstance(code, int) and not isinstance(code, bool) and code:
        message = f"{message} (Sidekick error {code})"
    return message[:MAX_MESSAGE]


def response_change(frame: dict[str, Any], redactor: Optional[Redactor] = None) -> Change:
    """An answer to a put or update: refused (error) or taken (active)."""
    if frame.get("erroneous") and frame.get("errorCode") not in ALREADY_EXISTS:
        return Change(protocol.ERROR, error_text(frame, redactor))
    return Change(protocol.ACTIVE)


def event_change(
    name: str, frame: dict[str, Any], redactor: Optional[Redactor] = None
) -> Optional[Change]:
    """A failure or rate-limit event; None for other events."""
    if name in INSTALL_FAILED:
        return Change(protocol.ERROR, error_text(frame, redactor))
    if name in HIT_FAILED:
        return Change(None, error_text(frame, redactor), failed_hit=True)
    if name in RATE_LIMITED:
        return Change(protocol.THROTTLED, THROTTLED_MESSAGE)
    return None


def event_kind(name: str) -> Optional[str]:
    """The probe kind an event without a probe id is about (None: either)."""
    if "TracePoint" in name:
        return protocol.TRACEPOINT
    if "LogPoint" in name:
        return protocol.LOGPOINT
    return None


def where(frame: dict[str, Any]) -> tuple[str, Any]:
    """The file and line an event without a probe id names."""
    return str(frame.get("fileName") or frame.get("className") or ""), frame.get("lineNo")


def same_file(sent: str, reported: str) -> bool:
    """Whether the file an agent reports is the one it was sent (Python echoes the name
    with ``?ref=``; Node its local path, which is what it was sent)."""
    if not reported:
        return False
    sent_path, reported_path = sent.split("?", 1)[0], reported.split("?", 1)[0]
    return sent_path == reported_path or sent_path.lstrip("/") == reported_path.lstrip("/")


def listed(frame: dict[str, Any]) -> Optional[dict[str, bool]]:
    """The probes an ``ApplicationStatusEvent`` lists: id -> disabled (None: no list)."""
    application = frame.get("application")
    if not isinstance(application, dict):
        return None
    found: dict[str, bool] = {}
    for key in ("tracePoints", "logPoints"):
        for item in application.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                found[bare_id(item["id"])] = bool(item.get("disabled"))
    return found
