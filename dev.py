#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.10+ on the machine.

    python3 dev.py demo    build what is missing, then run the server, a demo shop under the
                           agent and a little traffic; Ctrl-C stops it all
    python3 dev.py test    build what is missing, then run ruff, mypy and every test: the
                           agent's on each Python from 3.9 to 3.13, the rest on this one

Environments live in ``.venv`` (server, CLI, tests) and ``.venvs/pyX.Y`` (one per agent
interpreter); they are rebuilt only when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAIN_VENV = ROOT / ".venv"
AGENT_VENVS = ROOT / ".venvs"
AGENT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
REPORTS = ROOT / ".venvs" / "reports"
LINTED = ("src", "tests", "benchmarks", "tools", "dev.py")


def main() -> int:
    parser = argparse.ArgumentParser(prog="dev.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the server with the demo service attached")
    demo.add_argument("--port", type=int, default=7777)
    demo.add_argument("--no-traffic", action="store_true", help="do not generate traffic")
    test = sub.add_parser("test", help="run lint, type checks and the whole test suite")
    test.add_argument("--fast", action="store_true", help="skip the other interpreters")
    test.add_argument("pytest_args", nargs="*", help="extra arguments for the main pytest run")
    args = parser.parse_args()
    if args.command == "demo":
        python = ensure_main_venv()
        from_demo = [str(python), "-m", "peephole.demo.launcher", "--port", str(args.port)]
        if args.no_traffic:
            from_demo.append("--no-traffic")
        return run_foreground(from_demo)
    return run_tests(fast=args.fast, extra=args.pytest_args)


# --- environments --------------------------------------------------------------------------


def find_python(version: str) -> str | None:
    """Find an interpreter for ``version`` under pyenv, else on PATH.

    pyenv's shims are skipped: a shim for a version that is not selected only prints an error.
    """
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted((pyenv_root / "versions").glob(f"{version}.*"), reverse=True):
        exe = candidate / "bin" / f"python{version}"
        if exe.exists():
            return str(exe)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        exe = Path(directory) / f"python{version}"
        if "shims" not in exe.parts and exe.exists():
            return str(exe)
    return None


def server_python() -> str:
    if sys.version_info >= (3, 10):
        return sys.executable
    for version in ("3.12", "3.11", "3.13", "3.10"):
        found = find_python(version)
        if found:
            return found
    sys.exit("peephole's server needs Python 3.10 or newer; none was found")


def ensure_venv(path: Path, python: str, extras: str) -> Path:
    """Create ``path`` with ``python`` and install the project with ``extras`` if stale."""
    bin_python = path / "bin" / "python"
    stamp = path / ".peephole-stamp"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if bin_python.exists() and stamp.exists() and stamp.read_text() == digest:
        return bin_python
    print(f"==> preparing {path.relative_to(ROOT)} ({python}, [{extras}])", flush=True)
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(path)], check=True)
    pip = [str(bin_python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-U", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    stamp.write_text(digest)
    return bin_python


def ensure_main_venv() -> Path:
    return ensure_venv(MAIN_VENV, server_python(), "dev")


def run_foreground(command: list[str]) -> int:
    """Run a child in the foreground, passing Ctrl-C to it and waiting for it to finish."""
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


# --- tests ---------------------------------------------------------------------------------


def run_tests(fast: bool, extra: list[str]) -> int:
    started = time.monotonic()
    python = ensure_main_venv()
    pythons: dict[str, str] = {}
    for version in AGENT_PYTHONS:
        if fast and f"{sys.version_info[0]}.{sys.version_info[1]}" != version:
            continue
        interpreter = find_python(version)
        if interpreter is None:
            if os.environ.get("CI"):
                sys.exit(f"Python {version} is required in CI and was not found")
            print(f"==> Python {version} not found: its agent tests are skipped", flush=True)
            continue
        pythons[version] = str(ensure_venv(AGENT_VENVS / f"py{version}", interpreter, "agent-test"))
    env = dict(os.environ)
    env["PEEPHOLE_TEST_PYTHONS"] = ",".join(f"{v}={p}" for v, p in pythons.items())
    shutil.rmtree(REPORTS, ignore_errors=True)
    REPORTS.mkdir(parents=True)

    failures = 0
    steps: list[tuple[str, list[str]]] = [
        ("ruff", [str(python), "-m", "ruff", "check", *LINTED]),
        ("mypy", [str(python), "-m", "mypy"]),
    ]
    for version, interpreter in pythons.items():
        steps.append(
            (f"agent tests on Python {version}", _pytest(interpreter, f"agent-{version}",
             ["tests/agent"]))
        )
    steps.append(
        ("server, client, CLI and end-to-end tests", _pytest(str(python), "main",
         ["tests", "--ignore=tests/agent", *extra]))
    )
    for title, command in steps:
        print(f"\n==> {title}", flush=True)
        code = subprocess.run(command, cwd=ROOT, env=env).returncode
        if code not in (0, 5):
            print(f"==> {title}: FAILED (exit {code})", flush=True)
            failures += 1
    passed, failed, skipped = _count_results()
    minutes = (time.monotonic() - started) / 60
    print(f"\n==> {len(steps)} steps, {failures} failed, in {minutes:.1f} min", flush=True)
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failures or failed else 0


def _pytest(python: str, name: str, args: list[str]) -> list[str]:
    report = REPORTS / f"{name}.xml"
    return [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *args]


def _count_results() -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for report in REPORTS.glob("*.xml"):
        for suite in ET.parse(report).getroot().iter("testsuite"):
            total = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += total - bad - skip
            failed += bad
            skipped += skip
    return passed, failed, skipped


if __name__ == "__main__":
    sys.exit(main())
