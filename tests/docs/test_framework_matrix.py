"""The framework versions are declared once and said the same everywhere: the integrations'
ranges (``FRAMEWORKS``), the oldest versions dev.py tests (``OLDEST_FRAMEWORKS``) and the
table in docs/integrations.md."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from peephole.agent.integrations import FRAMEWORKS, Framework

ROOT = Path(__file__).resolve().parents[2]


def _dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


@pytest.mark.parametrize("framework", FRAMEWORKS.values(), ids=lambda f: f.name)
def test_dev_py_tests_the_oldest_supported_version(framework: Framework) -> None:
    assert f"{framework.distribution}=={_dotted(framework.oldest)}.*" in _dev().OLDEST_FRAMEWORKS


@pytest.mark.parametrize("framework", FRAMEWORKS.values(), ids=lambda f: f.name)
def test_the_docs_table_gives_the_range(framework: Framework) -> None:
    text = (ROOT / "docs" / "integrations.md").read_text()
    row = re.search(rf"^\| {framework.name}\b[^|]*\| ([^|]+) \|", text, re.MULTILINE)
    assert row is not None, f"no row for {framework.name} in docs/integrations.md"
    assert row.group(1) == framework.range()


def test_every_gap_in_the_matrix_names_real_test_files_and_a_reason() -> None:
    for (python, end), (files, why) in _dev().FRAMEWORK_GAPS.items():
        assert python in _dev().AGENT_PYTHONS and end in ("newest", "oldest")
        assert files and why and all((ROOT / name).is_file() for name in files)
