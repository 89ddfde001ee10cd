"""Every public module says what it exports, and the rest of the package uses only that.

The rule (issue 14 item 4, after httpx's test of the same name): a module whose dotted name has
no part starting with ``_`` (a package counts by its ``__init__``) and that binds a public name
at its top level has ``__all__``; every name in ``__all__`` exists in the module; and every
public name one module of ``src/peephole`` takes from another (``from peephole.x import name``
or ``module.name`` after ``from peephole import x``) is in that module's ``__all__``. Alembic's
revision scripts (``server/migrations``) are scripts, not modules, and are left out. The check
reads the source with ``ast``, so it runs on every interpreter and imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "peephole"
NOT_MODULES = ("peephole.server.migrations",)


@dataclass
class Module:
    """One module of the package, as its source says."""

    name: str
    path: Path
    tree: ast.Module
    exported: list[str] | None  # __all__, None when missing
    bound: set[str] = field(default_factory=set)  # names bound at the top level

    @property
    def public(self) -> bool:
        return not any(part.startswith("_") for part in self.name.split("."))

    @property
    def public_names(self) -> set[str]:
        return {name for name in self.bound if not name.startswith("_")}


def modules() -> dict[str, Module]:
    """Every module of ``src/peephole`` by dotted name."""
    found: dict[str, Module] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if name.startswith(NOT_MODULES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found[name] = Module(name, path, tree, _dunder_all(tree), set(_bound(tree.body)))
    return found


def _dunder_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "__all__":
            assert isinstance(value, (ast.List, ast.Tuple)), "__all__ is a literal list"
            return [ast.literal_eval(item) for item in value.elts]
    return None


def _bound(body: list[ast.stmt]) -> Iterator[str]:
    """Names a module body binds, in conditional and ``try`` blocks too (not type-only ones)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                yield from (n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield alias.asname or alias.name.split(".")[0]
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _bound(node.body)
            yield from _bound(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _bound(block)


def uses(importer: Module, known: dict[str, Module]) -> Iterator[tuple[str, str, int]]:
    """``(module, name, line)`` for each name ``importer`` takes from another module."""
    aliases: dict[str, str] = {}  # local name -> module it stands for
    for node in ast.walk(importer.tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in known:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    aliases[alias.asname or alias.name] = submodule
                elif node.module != importer.name:
                    yield node.module, alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in known:
                    aliases[alias.asname] = alias.name
    # A module name also used for a local variable somewhere is not followed (no scopes here).
    for node in ast.walk(importer.tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            aliases.pop(node.id, None)
        elif isinstance(node, ast.arg):
            aliases.pop(node.arg, None)
    for node in ast.walk(importer.tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != importer.name
        ):
            target = aliases[node.value.id]
            if f"{target}.{node.attr}" not in known:
                yield target, node.attr, node.lineno


def test_every_public_module_has_dunder_all() -> None:
    missing = [
        m.name for m in modules().values() if m.public and m.public_names and m.exported is None
    ]
    assert missing == [], "add __all__ (the names other modules use) to these modules"


def test_every_exported_name_exists() -> None:
    wrong = [
        f"{m.name}.{name}"
        for m in modules().values()
        for name in m.exported or ()
        if name not in m.bound and "__getattr__" not in m.bound
    ]
    assert wrong == []


def test_names_used_across_modules_are_exported() -> None:
    known = modules()
    unexported = sorted(
        {
            f"{target}.{name} (used by {importer.name}:{line})"
            for importer in known.values()
            for target, name, line in uses(importer, known)
            if not name.startswith("_") and name not in (known[target].exported or [name])
        }
    )
    assert unexported == [], "export these from their module, or import them from where defined"
