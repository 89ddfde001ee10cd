"""Argument parsing: bad input is a one-line usage error (exit 2) before any network call."""

from __future__ import annotations

import click
import pytest

from peephole.cli.common import parse_duration, parse_location

from .conftest import Cli


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shop/cart.py:42", ("shop/cart.py", 42)),
        ("./main.py:1", ("./main.py", 1)),
        ("/srv/app/x.py:7", ("/srv/app/x.py", 7)),
        ("C:\\app\\x.py:7", ("C:\\app\\x.py", 7)),
    ],
)
def test_location(text: str, expected: tuple[str, int]) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize(
    "text", ["cart.py", "cart.py:", ":42", "cart.py:0", "cart.py:x", "cart.py:-3", "cart.py:4.5"]
)
def test_bad_location(text: str) -> None:
    with pytest.raises(click.BadParameter, match=r"shop/cart\.py:42"):
        parse_location(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("90s", 90),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("45", 45),
        ("1.5h", 5400),
        (" 10M ", 600),
    ],
)
def test_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "m", "30 m", "1h-5m", "0s", "-5", ""])
def test_bad_duration(text: str) -> None:
    with pytest.raises(click.BadParameter):
        parse_duration(text)


def test_bad_location_exits_2_with_one_line(cli: Cli, closed_url: str) -> None:
    result = cli("--url", closed_url, "tracepoint", "add", "cart.py")
    assert result.code == 2
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert result.err == (
        "error: Invalid value for 'FILE:LINE': 'cart.py' is not FILE:LINE (for example "
        "shop/cart.py:42) (see `peephole tracepoint add --help`)\n"
    )


def test_bad_expire_exits_2(cli: Cli, closed_url: str) -> None:
    result = cli("--url", closed_url, "logpoint", "add", "a.py:3", "x={x}", "--expire", "5x")
    assert result.code == 2
    assert "'5x' is not a duration (use s, m, h or d: 90s, 30m, 2h, 1d)" in result.err


def test_bad_tag_exits_2(cli: Cli, closed_url: str) -> None:
    result = cli("--url", closed_url, "tracepoint", "add", "a.py:3", "--tag", "nokey")
    assert result.code == 2
    assert "'nokey' must look like key=value" in result.err


def test_edit_without_changes_exits_2(cli: Cli, closed_url: str) -> None:
    result = cli("--url", closed_url, "probes", "edit", "ab12")
    assert (result.code, result.err) == (
        2,
        "error: nothing to change: give at least one option, e.g. --condition "
        "(see `peephole probes edit --help`)\n",
    )


def test_unknown_command_and_option(cli: Cli) -> None:
    assert cli("frobnicate").code == 2
    result = cli("probes", "list", "--bogus")
    assert result.code == 2 and result.err in (  # click 8.2+, and 8.1 (the declared floor)
        "error: No such option '--bogus' (see `peephole probes list --help`)\n",
        "error: No such option: --bogus (see `peephole probes list --help`)\n",
    )


def test_bare_command_prints_help(cli: Cli) -> None:
    result = cli()
    assert result.code == 0 and "tracepoint" in result.out
    result = cli("probes")
    assert result.code == 0 and "enable" in result.out


def test_help_and_version(cli: Cli) -> None:
    assert cli("--version").out.strip() == "peephole, version 0.1.0"
    help_text = cli("tracepoint", "add", "-h").out
    assert "--expire DURATION" in help_text and "--watch EXPR" in help_text


def test_help_does_not_import_the_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from peephole.cli.main import run; run(['--help']); "
        "heavy = sorted(m for m in ('httpx', 'rich', 'peephole.server', 'websockets', "
        "'peephole.agent') if m in sys.modules); print(heavy, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"


def test_run_needs_a_program(cli: Cli) -> None:
    result = cli("run", "--service", "shop")
    assert result.code == 2
    assert result.err.startswith("error: Missing argument 'PROGRAM...'")


def test_server_flag_errors_are_usage_errors(cli: Cli, tmp_path: object) -> None:
    pytest.importorskip("peephole.server.main")
    result = cli("server", "--cert", "cert.pem", "--data-dir", str(tmp_path))
    assert (result.code, result.err) == (
        2,
        "error: TLS needs both --cert and --key (see `peephole server --help`)\n",
    )
