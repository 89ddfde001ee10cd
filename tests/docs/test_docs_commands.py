"""Every ``peephole ...`` command shown in the README and the docs is one the CLI accepts.

Each command line of a code block is parsed by the real CLI (options, arguments and their
types, down to the subcommand), without running it; a renamed flag or command fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import click
import pytest

from peephole.cli.main import cli

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def commands(page: Path) -> List[Tuple[int, str]]:
    """``(line number, command)`` for each ``peephole`` command in the page's code blocks."""
    found = []
    in_code = False
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            in_code = not in_code
        elif in_code and line.strip().startswith("peephole "):
            start = index + 1
            command = line.strip()
            while command.endswith("\\") and index + 1 < len(lines):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            found.append((start, command.split("  #")[0].strip()))
        index += 1
    return found


def parse(
    command: Any, args: List[str], parent: Optional[Any] = None, name: str = "peephole"
) -> Dict[str, Any]:
    """Parse ``args`` down to the subcommand, as running it would, but run nothing."""
    context = command.make_context(name, args, parent=parent)
    if isinstance(command, click.Group):
        protected = getattr(context, "_protected_args", None)
        rest = [*(protected if protected is not None else context.protected_args), *context.args]
        sub_name, sub, sub_args = command.resolve_command(context, rest)
        return parse(sub, sub_args, context, sub_name or "")
    return dict(context.params)


CASES = [(page, number, command) for page in PAGES for number, command in commands(page)]


def test_the_docs_show_commands() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("page", "number", "command"),
    CASES,
    ids=[f"{page.name}:{number}" for page, number, _ in CASES],
)
def test_command_is_accepted_by_the_cli(page: Path, number: int, command: str) -> None:
    args = shlex.split(PLACEHOLDER.sub("abc123", command))[1:]
    try:
        parse(cli, args)
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.UsageError as exc:
        pytest.fail(f"{page.name}:{number}: `{command}`: {exc.format_message()}")
