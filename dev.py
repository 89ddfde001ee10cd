#!/usr/bin/env python3
"""The project's two commands, needing nothing but Python 3.10+ on the machine.

    python3 dev.py demo    build what is missing, then run the server, a demo shop under the
                           agent and a little traffic; Ctrl-C stops it all
    python3 dev.py test    build what is missing, then run ruff (lint and format), mypy and
                           every test: the agent's on each Python from 3.9 to 3.13 (on 3.12
                           once more without its C speed-ups), the agent
                           and CLI on the lowest dependency versions declared, the rest on
                           this one

Environments live in ``.venv`` (server, CLI, tests), ``.venvs/pyX.Y`` (one per agent
interpreter) and ``.venvs/floors``; they are rebuilt only when ``pyproject.toml``,
``setup.py`` or the agent's C speed-ups (``_speedups.c``) change.
The real Sidekick agents the tests/sidekick tests run live in ``.venvs/sidekick-py3.8`` and
``.venvs/sidekick-node``, rebuilt when their pinning files in tests/sidekick change.
The PostgreSQL tests use the server on 127.0.0.1:5432, or a throwaway one started here.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAIN_VENV = ROOT / ".venv"
AGENT_VENVS = ROOT / ".venvs"
AGENT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# The agent runs measured by coverage: 3.11 for the bytecode backend (3.9 and 3.10 run the same
# code; coverage's tracer makes these tests ~60% slower), 3.12 and 3.13 for sys.monitoring
# (coverage's own sys.monitoring core costs little there).
COVERED_AGENT_RUNS = {"3.11": "ctrace", "3.12": "sysmon", "3.13": "sysmon"}
REPORTS = ROOT / ".venvs" / "reports"
FLOORS_VENV = AGENT_VENVS / "floors"
# The agent's and the CLI's direct dependencies, tested at their declared lowest versions.
FLOOR_PACKAGES = ("click", "websockets", "bytecode", "orjson", "httpx", "rich")
FLOOR_TESTS = (
    "tests/cli/test_usage.py",
    "tests/cli/test_errors.py",
    "tests/cli/test_render.py",
    "tests/cli/test_newcomer.py",
    "tests/client",
    "tests/agent/test_transport.py",
    "tests/agent/test_instrument.py",
    "tests/agent/test_launch.py",
)
# The web frameworks the agent's integrations hook; FRAMEWORKS in
# src/peephole/agent/integrations declares the versions supported. tests/integrations runs on
# every interpreter twice: in its agent venv with the newest versions that install there (the
# integrations-test extra), and with the oldest supported ones, installed once into a
# site-packages directory put first on PYTHONPATH (one pip install, not five venvs to build).
OLDEST_FRAMEWORKS = (
    "flask==2.3.*",
    "werkzeug==2.3.*",
    "django==4.2.*",
    "starlette==0.37.*",
    "fastapi==0.110.*",  # FastAPI on that Starlette
)
OLDEST_FRAMEWORK_TESTS = (
    "tests/integrations/test_versions.py",
    "tests/integrations/test_flask.py",
    "tests/integrations/test_django.py",
    "tests/integrations/test_fastapi.py",
    "tests/integrations/test_import_hooks.py",
)
# Where a framework does not install or run on a Python, said here and printed, never a
# silent skip: (Python, "newest" or "oldest") -> (test files left out, why). Empty: every
# framework runs at both ends on 3.9-3.13. Newest means the newest that installs on that
# Python (Django 4.2 on 3.9, 5.2 on 3.10 and 3.11, 6.x on 3.12+).
FRAMEWORK_GAPS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
FRAMEWORKS_OLDEST_DIR = AGENT_VENVS / "frameworks-oldest"
PG_PORT = 5432  # where tests/server/conftest.py looks
PG_DIR = AGENT_VENVS / "postgres"
# What an install builds from: a change to any of them reinstalls a venv (the C speed-ups
# are compiled into the source tree at install).
BUILD_INPUTS = (ROOT / "pyproject.toml", ROOT / "setup.py", ROOT / "src/peephole/agent/_speedups.c")
LINTED = ("src", "tests", "benchmarks", "tools", "dev.py", "setup.py")
CHROMIUM = "/usr/bin/chromium"  # the browser tests' (tests/ui)
# The real Sidekick agents that tests/sidekick runs against peephole's server (issue 16).
SIDEKICK_TESTS = ROOT / "tests" / "sidekick"
SIDEKICK_PYTHON_VENV = AGENT_VENVS / "sidekick-py3.8"
SIDEKICK_NODE_DIR = AGENT_VENVS / "sidekick-node"


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


def ensure_venv(path: Path, python: str, extras: str, pins: tuple[str, ...] = ()) -> Path:
    """Create ``path`` with ``python`` and install the project with ``extras`` (and exact
    ``pins`` of its dependencies) if stale."""
    bin_python = path / "bin" / "python"
    stamp = path / ".peephole-stamp"
    wanted = b"".join(path.read_bytes() for path in BUILD_INPUTS) + extras.encode()
    wanted += " ".join(pins).encode()
    digest = hashlib.sha256(wanted).hexdigest()
    if bin_python.exists() and stamp.exists() and stamp.read_text() == digest:
        return bin_python
    print(f"==> preparing {path.relative_to(ROOT)} ({python}, [{extras}])", flush=True)
    if not bin_python.exists():
        subprocess.run([python, "-m", "venv", str(path)], check=True)
    pip = [str(bin_python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-U", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]", *pins], check=True)
    stamp.write_text(digest)
    return bin_python


def ensure_oldest_frameworks(python: str) -> Path:
    """``OLDEST_FRAMEWORKS`` in a site-packages directory of their own (the agent classifies
    frames by that name), reinstalled when the pins change. Without their dependencies: the
    frameworks are pure Python, one copy serves every interpreter, and the agent venvs hold
    the dependencies (the integrations-test extra), new enough for both ends."""
    target = FRAMEWORKS_OLDEST_DIR / "site-packages"
    stamp = FRAMEWORKS_OLDEST_DIR / ".peephole-stamp"
    digest = hashlib.sha256(" ".join(OLDEST_FRAMEWORKS).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return target
    print("==> installing the oldest supported frameworks", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps"]
    subprocess.run([*pip, "--target", str(target), *OLDEST_FRAMEWORKS], check=True)
    stamp.write_text(digest)
    return target


def _framework_gaps(version: str, end: str) -> list[str]:
    """``--ignore`` options for what ``FRAMEWORK_GAPS`` leaves out, said aloud."""
    files, why = FRAMEWORK_GAPS.get((version, end), ((), ""))
    for name in files:
        print(f"==> Python {version}, {end} frameworks: {name} is not run: {why}", flush=True)
    return [f"--ignore={name}" for name in files]


def ensure_main_venv() -> Path:
    return ensure_venv(MAIN_VENV, server_python(), "dev")


def declared_floors() -> tuple[str, ...]:
    """``name==X`` for every package of ``FLOOR_PACKAGES`` that pyproject.toml declares as
    ``name>=X``: the oldest versions a user may have, which the floors venv installs."""
    text = (ROOT / "pyproject.toml").read_text()
    pins = []
    for name in FLOOR_PACKAGES:
        found = re.search(rf'"{name}(?:\[[^\]]*\])?>=([\w.]+)', text)
        if found is None:
            sys.exit(f"pyproject.toml declares no lowest version (>=) for {name}")
        pins.append(f"{name}=={found.group(1)}")
    return tuple(pins)


def ensure_floors_venv() -> Path:
    """The agent's and the CLI's direct dependencies at their declared lowest versions (the
    rest as pip resolves them), on 3.11 so that ``bytecode`` is in use too."""
    python = find_python("3.11") or server_python()
    return ensure_venv(FLOORS_VENV, python, "agent-test", declared_floors())


def ensure_sidekick_agents() -> dict[str, str]:
    """The Sidekick agents' installs, as the variables tests/sidekick/apps.py reads: the PyPI
    agent in a CPython 3.8 venv, the npm agent from the committed package-lock.json; each is
    rebuilt when its pinning file changes. Without Python 3.8 or npm, CI stops (a missing
    install must not pass as skipped tests); a local run says those tests are skipped."""
    found = {
        "PEEPHOLE_TEST_SIDEKICK_PYTHON": _ensure_sidekick_python(),
        "PEEPHOLE_TEST_SIDEKICK_NODE": _ensure_sidekick_node(),
    }
    return {name: value for name, value in found.items() if value is not None}


def _ensure_sidekick_python() -> str | None:
    requirements = SIDEKICK_TESTS / "py_app" / "requirements.txt"
    python = find_python("3.8")
    if _sidekick_missing("Python 3.8", python):
        return None
    if _stale(SIDEKICK_PYTHON_VENV, requirements.read_bytes()):
        print(f"==> preparing {SIDEKICK_PYTHON_VENV.relative_to(ROOT)} ({python})", flush=True)
        shutil.rmtree(SIDEKICK_PYTHON_VENV, ignore_errors=True)
        subprocess.run([str(python), "-m", "venv", str(SIDEKICK_PYTHON_VENV)], check=True)
        pip = [str(SIDEKICK_PYTHON_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--disable-pip-version-check", "-r", str(requirements)], check=True)
        _stamp(SIDEKICK_PYTHON_VENV, requirements.read_bytes())
    return str(SIDEKICK_PYTHON_VENV / "bin" / "python")


def _ensure_sidekick_node() -> str | None:
    npm = shutil.which("npm") if shutil.which("node") else None
    manifests = [
        SIDEKICK_TESTS / "node_app" / name for name in ("package.json", "package-lock.json")
    ]
    pinned = b"".join(path.read_bytes() for path in manifests)
    if _sidekick_missing("Node.js (node and npm)", npm):
        return None
    if _stale(SIDEKICK_NODE_DIR, pinned):
        print(f"==> preparing {SIDEKICK_NODE_DIR.relative_to(ROOT)} (npm ci)", flush=True)
        shutil.rmtree(SIDEKICK_NODE_DIR, ignore_errors=True)
        SIDEKICK_NODE_DIR.mkdir(parents=True)
        for path in manifests:
            shutil.copy(path, SIDEKICK_NODE_DIR / path.name)
        npm_ci = [str(npm), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm_ci, cwd=SIDEKICK_NODE_DIR, check=True)
        _stamp(SIDEKICK_NODE_DIR, pinned)
    return str(SIDEKICK_NODE_DIR / "node_modules")


def _sidekick_missing(what: str, found: str | None) -> bool:
    if found is not None:
        return False
    if os.environ.get("CI"):
        sys.exit(f"{what} is required in CI for the Sidekick agent tests and was not found")
    print(f"==> {what} not found: the tests against its Sidekick agent are skipped", flush=True)
    return True


def _stale(path: Path, pinned: bytes) -> bool:
    stamp = path / ".peephole-stamp"
    return not stamp.exists() or stamp.read_text() != hashlib.sha256(pinned).hexdigest()


def _stamp(path: Path, pinned: bytes) -> None:
    (path / ".peephole-stamp").write_text(hashlib.sha256(pinned).hexdigest())


# --- PostgreSQL ----------------------------------------------------------------------------


def ensure_postgres(port: int = PG_PORT, directory: Path = PG_DIR) -> Callable[[], None] | None:
    """The PostgreSQL tests need a server on 127.0.0.1:``port`` with a database ``test`` that
    the user ``postgres`` opens without a password. Use the one that answers there; else
    start a throwaway one in ``directory`` with this machine's ``initdb`` and ``pg_ctl`` and
    return what stops it; else say why the PostgreSQL tests will be skipped."""
    if _port_open(port):
        return None
    bindir = _postgres_bindir()
    why = (
        "no PostgreSQL binaries (initdb, pg_ctl) were found; install them, e.g. "
        "`apt install postgresql`"
        if bindir is None
        else "initdb refuses to run as root"
        if os.geteuid() == 0
        else ""
    )
    if why:
        print(f"==> no PostgreSQL on 127.0.0.1:{port} and {why}: its tests are skipped", flush=True)
        return None
    assert bindir is not None
    data, quiet = directory / "data", {"stdout": subprocess.DEVNULL, "check": True}
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            **quiet,
        )
    print(f"==> starting a throwaway PostgreSQL on 127.0.0.1:{port} ({data})", flush=True)
    subprocess.run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(directory / "log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {directory}",
            "start",
        ],
        **quiet,
    )
    createdb = shutil.which("createdb") or str(bindir / "createdb")
    subprocess.run(
        [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "test"],
        stderr=subprocess.DEVNULL,
        check=False,
    )  # fails once it exists
    return lambda: subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], **quiet
    )


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _postgres_bindir() -> Path | None:
    """Where ``initdb`` is: on PATH, or Debian's /usr/lib/postgresql/N/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


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
        pythons[version] = str(
            ensure_venv(AGENT_VENVS / f"py{version}", interpreter, "agent-test,integrations-test")
        )
    env = dict(os.environ)
    env["PEEPHOLE_TEST_PYTHONS"] = ",".join(f"{v}={p}" for v, p in pythons.items())
    env.update(ensure_sidekick_agents())
    shutil.rmtree(REPORTS, ignore_errors=True)
    REPORTS.mkdir(parents=True)
    ensure_chromium()

    failures = 0
    steps: list[tuple[str, list[str]]] = [
        ("ruff", [str(python), "-m", "ruff", "check", *LINTED]),
        ("ruff format", [str(python), "-m", "ruff", "format", "--check", *LINTED]),
        ("mypy (3.12)", [str(python), "-m", "mypy"]),
    ]
    if "3.9" in pythons:
        steps.append(("mypy (3.9)", _mypy_39(str(python), pythons["3.9"])))
    oldest = ensure_oldest_frameworks(str(python))
    for version, interpreter in pythons.items():
        steps.append(
            (
                f"agent and framework tests on Python {version} (newest frameworks)",
                _pytest(
                    interpreter,
                    f"agent-{version}",
                    ["tests/agent", "tests/integrations", *_framework_gaps(version, "newest")],
                    core=COVERED_AGENT_RUNS.get(version),
                ),
            )
        )
        steps.append(
            (
                f"framework tests on Python {version} (oldest supported frameworks)",
                [
                    "env",
                    f"PYTHONPATH={oldest}",
                    *_pytest(
                        interpreter,
                        f"frameworks-oldest-{version}",
                        [*OLDEST_FRAMEWORK_TESTS, *_framework_gaps(version, "oldest")],
                    ),
                ],
            )
        )
    if "3.12" in pythons:
        steps.append(
            (
                "agent tests on Python 3.12 without the C speed-ups (their pure-Python parts)",
                [
                    "env",
                    "PEEPHOLE_NO_SPEEDUPS=1",
                    *_pytest(pythons["3.12"], "agent-3.12-pure", ["tests/agent"]),
                ],
            )
        )
    steps.append(
        (
            "agent and CLI on the lowest declared versions of their dependencies",
            _pytest(str(ensure_floors_venv()), "floors", list(FLOOR_TESTS)),
        )
    )
    steps.append(
        (
            "server, client, CLI and end-to-end tests",
            _pytest(
                str(python),
                "main",
                ["tests", "--ignore=tests/agent", "--ignore=tests/integrations", *extra],
                core="ctrace",
            ),
        )
    )
    coverage = [str(python), "-m", "coverage"]
    steps.append(("coverage: combine every run's data", [*coverage, "combine", "--quiet"]))
    steps.append(("coverage (the floor is fail_under in pyproject.toml)", [*coverage, "report"]))
    stop_postgres = ensure_postgres()
    try:
        for title, command in steps:
            print(f"\n==> {title}", flush=True)
            code = subprocess.run(command, cwd=ROOT, env=env).returncode
            if code not in (0, 5):
                print(f"==> {title}: FAILED (exit {code})", flush=True)
                failures += 1
    finally:
        if stop_postgres is not None:
            stop_postgres()
    passed, failed, skipped = _count_results()
    minutes = (time.monotonic() - started) / 60
    print(f"\n==> {len(steps)} steps, {failures} failed, in {minutes:.1f} min", flush=True)
    print(f"total: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failures or failed else 0


def ensure_chromium() -> None:
    """The web UI's tests drive Debian's Chromium (Playwright's own browser download cannot
    work on these machines); install it when it is missing. The tests fail without it."""
    if Path(CHROMIUM).exists() or os.environ.get("PEEPHOLE_CHROMIUM"):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print(
            f"==> {CHROMIUM} is missing: install Debian's chromium package "
            "(the browser tests fail without it)",
            flush=True,
        )
        return
    print("==> installing chromium for the browser tests (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env)


def _mypy_39(python: str, agent_python: str) -> list[str]:
    """mypy for Python 3.9 on what runs there (the agent, and the client models that ``peephole
    run`` imports), against the py3.9 venv's packages; plain ``mypy`` checks everything for
    3.12, the sys.monitoring backend included."""
    return [
        *(python, "-m", "mypy", "--python-version", "3.9", "--python-executable", agent_python),
        *("src/peephole/__init__.py", "src/peephole/protocol.py", "src/peephole/agent"),
        *("src/peephole/client", "tests/agent"),
    ]


def _pytest(python: str, name: str, args: list[str], core: str | None = None) -> list[str]:
    """pytest for one step; with a coverage ``core`` it runs under coverage (pyproject
    [tool.coverage]), its data combined at the end."""
    report = REPORTS / f"{name}.xml"
    runner = ["-m", "pytest"]
    if core is not None:
        runner = ["-m", "coverage", "run", "-m", "pytest"]
    command = [python, *runner, "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *args]
    return command if core is None else ["env", f"COVERAGE_CORE={core}", *command]


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
