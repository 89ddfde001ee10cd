"""docs/rest-api.md is generated from the server's OpenAPI document; this fails when it drifts."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rest-api.md"


def load_generator() -> ModuleType:
    path = ROOT / "tools" / "gen_rest_docs.py"
    spec = importlib.util.spec_from_file_location("gen_rest_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated() -> str:
    return str(load_generator().generate())


def test_rest_reference_matches_the_server(generated: str) -> None:
    assert DOC.read_text(encoding="utf-8") == generated, (
        "docs/rest-api.md is stale: run "
        "`.venv/bin/python tools/gen_rest_docs.py > docs/rest-api.md`"
    )


def test_every_endpoint_of_the_contract_is_documented_with_its_role(generated: str) -> None:
    for heading, role in [
        ("GET /api/v1/health", None),
        ("GET /api/v1/events", "viewer"),
        ("POST /api/v1/probes", "debugger"),
        ("PATCH /api/v1/probes/{probe_id}", "debugger"),
        ("DELETE /api/v1/probes/{probe_id}", "debugger"),
        ("POST /api/v1/tokens", "admin"),
        ("GET /api/v1/audit", "admin"),
        ("PUT /api/v1/services/{name}/policy", "admin"),
    ]:
        section = generated.split(f"### `{heading}`\n", 1)[1].split("\n### ", 1)[0]
        assert (f"Needs: `{role}`." if role else "Needs: no token.") in section, heading
    assert "### `WS /api/v1/stream`" in generated
    assert "### ProbeCreate" in generated and "| `line` (required) | integer |" in generated
