"""What the /app route makes of a frame's text before the session sees it."""

from __future__ import annotations

from peephole.server.sidekick.route import _decode


def test_lone_surrogates_become_replacement_characters() -> None:
    """Stored as sent, a lone surrogate breaks every REST page that shows the event."""
    frame = _decode('{"name": "LogPointEvent", "logMessage": "bad \\udcff path", "k\\ud800": 1}')
    assert frame == {"name": "LogPointEvent", "logMessage": "bad \ufffd path", "k\ufffd": 1}


def test_a_surrogate_pair_is_kept() -> None:
    assert _decode('{"logMessage": "\\ud83d\\ude00"}') == {"logMessage": "\U0001f600"}


def test_what_is_not_one_object_is_refused() -> None:
    assert _decode("[1, 2]") is None
    assert _decode("{") is None
    assert _decode("[" * 100_000) is None
