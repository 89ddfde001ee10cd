"""What ``pyproject.toml`` declares exists (issue 14 item 6: no dead scaffolding).

Every pytest marker declared is used by some test, every marker a test uses is declared (pytest
runs with ``--strict-markers``, this says so before collection), and every package-data pattern
matches a file that ships.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
# Markers pytest and the plugins in the test extras register themselves.
REGISTERED = {
    "parametrize",
    "skip",
    "skipif",
    "xfail",
    "usefixtures",
    "filterwarnings",
    "timeout",  # pytest-timeout
    "asyncio",  # pytest-asyncio
}


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def declared_markers() -> set[str]:
    lines = pyproject()["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":")[0].split("(")[0].strip() for line in lines}


def used_markers() -> dict[str, set[str]]:
    """Marker name -> the test files that use it (``pytest.mark.NAME``)."""
    used: dict[str, set[str]] = {}
    for path in TESTS.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "mark"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "pytest"
            ):
                used.setdefault(node.attr, set()).add(str(path.relative_to(ROOT)))
    return used


def test_every_declared_marker_is_used() -> None:
    assert declared_markers() - set(used_markers()) == set()


def test_every_used_marker_is_declared() -> None:
    undeclared = {
        name: sorted(files)
        for name, files in used_markers().items()
        if name not in declared_markers() | REGISTERED
    }
    assert undeclared == {}


def test_markers_are_strict() -> None:
    assert "--strict-markers" in pyproject()["tool"]["pytest"]["ini_options"]["addopts"]


def test_every_package_data_pattern_matches_a_file() -> None:
    package_data = pyproject()["tool"]["setuptools"]["package-data"]
    empty = [
        f"{package}: {pattern}"
        for package, patterns in package_data.items()
        for pattern in patterns
        if not any(path.is_file() for path in (ROOT / "src" / package).glob(pattern))
    ]
    assert empty == []
