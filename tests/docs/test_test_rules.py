"""The suite's own rules, checked on its source (issue 14): no fixed sleep decides a result,
no expected failure hides a defect, no skip hides a missing install.

A sleep is allowed only inside a loop that has a deadline (it references ``monotonic`` or a
name containing ``deadline``): a bounded poll on a condition, as :func:`waiting.wait_until`
does. Anything else is a sleep followed by an assertion, which lies on a fast machine and
flakes on a slow one. The allow-list names the few sleeps that are the thing being tested.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# (file under tests/, enclosing function): why this sleep is not a wait. Empty today: the
# applications whose sleeps are the thing being probed live in strings, which are not code.
ALLOWED_SLEEPS: dict[tuple[str, str], str] = {}

# (file under tests/, enclosing function): why this test may skip when a module is missing.
ALLOWED_SKIPS = {
    ("cli/conftest.py", "server"): "the floors venv has no server; its CLI tests need none",
    ("cli/test_usage.py", "test_server_flag_errors_are_usage_errors"): "runs in floors too",
}

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_LOOPS = (ast.While, ast.For, ast.AsyncFor)


def _sleep_names(tree: ast.Module) -> set[str]:
    """Bare names bound to a sleep function (``from time import sleep``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            names |= {alias.asname or alias.name for alias in node.names if alias.name == "sleep"}
    return names


def _is_sleep(node: ast.AST, bare: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return (
            func.attr == "sleep"
            and isinstance(func.value, ast.Name)
            and func.value.id in ("time", "asyncio")
        )
    return isinstance(func, ast.Name) and func.id in bare


def _has_deadline(loop: ast.AST) -> bool:
    for node in ast.walk(loop):
        name = (
            node.id
            if isinstance(node, ast.Name)
            else node.attr
            if isinstance(node, ast.Attribute)
            else ""
        )
        if "deadline" in name.lower() or name == "monotonic":
            return True
    return False


def _sleeps(tree: ast.Module) -> Iterator[tuple[ast.Call, list[ast.AST]]]:
    """Every sleep call with the chain of nodes that encloses it, outermost first."""
    bare = _sleep_names(tree)

    def visit(node: ast.AST, chain: list[ast.AST]) -> Iterator[tuple[ast.Call, list[ast.AST]]]:
        if _is_sleep(node, bare):
            assert isinstance(node, ast.Call)
            yield node, chain
        for child in ast.iter_child_nodes(node):
            yield from visit(child, [*chain, node])

    yield from visit(tree, [])


def violations(path: Path, root: Path = TESTS) -> list[str]:
    """The sleeps in ``path`` that are not inside a loop with a deadline, nor allowed."""
    tree = ast.parse(path.read_text(), str(path))
    relative = path.relative_to(root).as_posix()
    found = []
    for call, chain in _sleeps(tree):
        if [ast.dump(a) for a in call.args] == [ast.dump(ast.Constant(0))]:
            continue  # sleep(0) yields to other tasks once; it waits for nothing
        scope = next((n for n in reversed(chain) if isinstance(n, _SCOPES)), None)
        inner = chain[chain.index(scope) + 1 :] if scope is not None else chain
        loop = next((n for n in reversed(inner) if isinstance(n, _LOOPS)), None)
        if loop is not None and _has_deadline(loop):
            continue
        function = getattr(scope, "name", "<module>")
        if (relative, function) in ALLOWED_SLEEPS:
            continue
        where = "in a loop without a deadline" if loop is not None else "outside any loop"
        found.append(f"{relative}:{call.lineno} ({function}): a sleep {where}")
    return found


def xfails(path: Path, root: Path = TESTS) -> list[str]:
    """Expected failures: none at all, strict or not (a fixed defect would pass unnoticed
    under a lenient one, and a strict one is a known failure kept green)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "xfail":
            found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def skips(path: Path, root: Path = TESTS) -> list[str]:
    """``pytest.importorskip`` calls not in the allow-list: a test that skips when a package
    is missing hides a broken install (every venv dev.py builds has what its tests need)."""
    tree = ast.parse(path.read_text(), str(path))
    relative = path.relative_to(root).as_posix()
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "importorskip"
            and (relative, function) not in ALLOWED_SKIPS
        ):
            found.append(f"{relative}:{node.lineno} ({function})")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "<module>")
    return found


def _python_files() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def test_no_sleep_decides_a_result() -> None:
    found = [line for path in _python_files() for line in violations(path)]
    assert not found, "wait on a condition (waiting.wait_until) instead:\n" + "\n".join(found)


def test_no_expected_failures() -> None:
    found = [line for path in _python_files() for line in xfails(path)]
    assert not found, "fix the test or the code instead of marking it xfail:\n" + "\n".join(found)


def test_no_skip_hides_a_missing_install() -> None:
    found = [line for path in _python_files() for line in skips(path)]
    assert not found, "import the package (and install it in the venv):\n" + "\n".join(found)


def test_the_rule_sees_what_it_must(tmp_path: Path) -> None:
    """The checker itself: a sleep then an assertion is caught, a bounded poll is not."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import time\n"
        "from asyncio import sleep\n"
        "def test_sleeps_then_asserts():\n"
        "    time.sleep(0.5)\n"
        "    assert True\n"
        "async def test_polls_forever():\n"
        "    while True:\n"
        "        await sleep(0.1)\n"
        "def test_polls_with_a_deadline():\n"
        "    deadline = time.monotonic() + 5\n"
        "    while time.monotonic() < deadline:\n"
        "        time.sleep(0.1)\n"
        "async def test_yields_once():\n"
        "    await sleep(0)\n"
        "def test_expects_failure():\n"
        "    import pytest\n"
        "    pytest.mark.xfail(reason='x')\n"
        "    pytest.importorskip('flask')\n"
    )
    assert violations(sample, tmp_path) == [
        "test_sample.py:4 (test_sleeps_then_asserts): a sleep outside any loop",
        "test_sample.py:8 (test_polls_forever): a sleep in a loop without a deadline",
    ]
    assert xfails(sample, tmp_path) == ["test_sample.py:17"]
    assert skips(sample, tmp_path) == ["test_sample.py:18 (test_expects_failure)"]
