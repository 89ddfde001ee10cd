"""Every route of the OpenAPI document fuzzed by Schemathesis (its boundary-value coverage
phase, then random inputs, NUL characters included) on SQLite and on PostgreSQL: no input
makes the server answer 5xx or drop the connection, and every answer matches the response
schema the document declares for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ADMIN_TOKEN, LiveServer

pytestmark = [pytest.mark.server, pytest.mark.slow]

EXAMPLES = 25  # random inputs per route, after the coverage phase: about 30 s per database


def test_no_input_makes_any_route_fail(server: LiveServer, tmp_path: Path) -> None:
    report = tmp_path / "report.ndjson"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            server.url + "/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",  # answers match /openapi.json
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "11",
            "--no-color",
            "--workers",
            "1",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--exclude-path-regex",
            "/revoke$",  # would revoke the token the fuzzer uses
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # it keeps a cache there
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    cases = sum(1 for line in report.read_text().splitlines() if '"ScenarioFinished"' in line)
    print(f"\n{cases} scenarios; {run.stdout[-600:]}")  # the figures for docs/reliability.md
