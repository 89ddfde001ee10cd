"""Write the CLI reference from the CLI itself: ``python -m peephole.cli.docgen > docs/cli.md``.

It walks the Click command tree, so the reference cannot drift from the code (a test compares
docs/cli.md with this output).
"""

from __future__ import annotations

import inspect
import sys

import click

from peephole.cli.main import cli

__all__ = ["generate"]

HEADER = """\
# CLI reference

Generated from the CLI by `python -m peephole.cli.docgen > docs/cli.md`; do not edit by hand.
Every command accepts `-h`/`--help`. Exit codes: 0 success, 1 failure, 2 usage error.
The server URL and token come from `--url`/`--token`, else `PEEPHOLE_URL`/`PEEPHOLE_TOKEN`,
else the file `peephole login` saved (`~/.config/peephole/config.json`, mode 0600).
"""


def generate() -> str:
    parts = [HEADER]
    settings = {**cli.context_settings, "terminal_width": 100, "max_content_width": 100}
    root = click.Context(cli, info_name="peephole", **settings)
    _command(root, cli, parts)
    return "\n".join(parts).rstrip() + "\n"


def _command(ctx: click.Context, command: click.Command, parts: list[str]) -> None:
    parts.append(f"## `{ctx.command_path}`\n")
    parts.append(_help_text(command.help or ""))
    parts.append(f"```\n{command.get_usage(ctx).strip()}\n```\n")
    rows = [
        record
        for param in command.get_params(ctx)
        if (record := param.get_help_record(ctx)) is not None
    ]
    if rows:
        parts.append("| Option | Description |\n|---|---|")
        parts.extend(f"| `{_cell(name)}` | {_cell(text)} |" for name, text in rows)
        parts.append("")
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                _command(sub_ctx, sub, parts)


def _help_text(text: str) -> str:
    """Click help to Markdown: paragraphs stay, ``\\b`` blocks become code blocks."""
    out: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines = paragraph.splitlines()
        if lines and lines[0].strip() == "\b":
            out.append("```\n" + inspect.cleandoc("\n".join(lines[1:])) + "\n```")
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    sys.stdout.write(generate())
