"""docs/cli.md is generated from the CLI; this fails when someone forgets to regenerate it."""

from __future__ import annotations

from pathlib import Path

from peephole.cli.docgen import generate

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_matches_the_cli() -> None:
    assert DOC.read_text(encoding="utf-8") == generate(), (
        "docs/cli.md is stale: run `python -m peephole.cli.docgen > docs/cli.md`"
    )


def test_reference_covers_every_command() -> None:
    text = generate()
    for command in (
        "login",
        "services",
        "instances",
        "tracepoint add",
        "logpoint add",
        "probes list",
        "probes show",
        "probes edit",
        "probes move",
        "probes enable",
        "probes disable",
        "probes rm",
        "snapshots list",
        "snapshots show",
        "events tail",
        "exceptions list",
        "exceptions show",
        "source",
        "tokens create",
        "tokens list",
        "agent-keys create",
        "audit",
        "policy show",
        "policy set",
        "server",
        "run",
    ):
        assert f"## `peephole {command}`" in text
