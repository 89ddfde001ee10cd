"""Golden tests of the renderings: the output for a fixed event is stable to the character.

Run with PEEPHOLE_UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate change,
then review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from peephole.cli import render
from peephole.cli.common import console
from peephole.client import Event, Probe

GOLDEN = Path(__file__).parent / "golden"


def load(name: str) -> Event:
    return Event.from_dict(json.loads((GOLDEN / name).read_text(encoding="utf-8")))


def cut(text: str) -> str:
    return f"{render.OPEN}{text}{render.CLOSE}"


def check(name: str, text: str) -> None:
    """Compare with the golden file (trailing spaces of Rich's padding are ignored)."""
    text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    path = GOLDEN / name
    if os.environ.get("PEEPHOLE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("golden", "frame", "depth"),
    [
        ("snapshot_show.txt", None, None),
        ("snapshot_show_frame1.txt", 1, None),
        ("snapshot_show_depth1.txt", 0, 1),
    ],
)
def test_snapshot(
    capsys: pytest.CaptureFixture[str], golden: str, frame: int | None, depth: int | None
) -> None:
    console().print(render.snapshot(load("snapshot_event.json"), frame, depth))
    check(golden, capsys.readouterr().out)


def test_every_cut_is_visible(capsys: pytest.CaptureFixture[str]) -> None:
    console().print(render.snapshot(load("snapshot_event.json")))
    out = capsys.readouterr().out
    for marker in (
        "… 110 more items",
        "… 1 more item",
        f"password: str {cut('redacted')}",
        f"address: shop.users.Address {cut('depth')}",
        cut("truncated, 10000 chars"),
        cut("same as self.items[0]"),
        cut("unsupported"),
        cut("error: name 'user' is not defined"),
        "trace link https://jaeger.example/trace/4bf92f3577b34da6a3ce929d0e0e4736",
    ):
        assert marker in out


def test_exception_event(capsys: pytest.CaptureFixture[str]) -> None:
    event = load("exception_event.json")
    assert render.default_frame(event) == 1  # the innermost frame with locals
    console().print(render.snapshot(event))
    check("exception_show.txt", capsys.readouterr().out)


def test_probe(capsys: pytest.CaptureFixture[str]) -> None:
    probe = Probe.from_dict(json.loads((GOLDEN / "probe.json").read_text(encoding="utf-8")))
    console().print(render.probes([probe]))
    console().print(render.probe(probe))
    check("probe_show.txt", capsys.readouterr().out)


def test_data_is_never_read_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    event = Event.from_dict(
        {
            "id": "e1",
            "type": "log",
            "time": 0,
            "service": "[bold]x[/bold]",
            "file": "a.py",
            "line": 1,
            "level": "info",
            "message": "[red]not markup[/red]",
        }
    )
    console().print(render.event_line(event), soft_wrap=True)
    console().print(render.events([event]))
    out = capsys.readouterr().out
    assert "[red]not markup[/red]" in out and out.count("[bold]x[/bold]") == 2
