"""The README and the docs point at things that exist: files, anchors, lines of the demo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHOP_LINE = re.compile(r"\bshop/(\w+\.py)(?::| --around )(\d+)\b")  # FILE:LINE or `source`
SHOP = ROOT / "src" / "peephole" / "demo" / "shop"

# The statements of the demo shop that the README and the docs tell people to probe. A
# reference whose line no longer holds one of these has drifted from the code.
PROBED_STATEMENTS = {
    "checkout.py": {"rate = coupon.rates[line.product.category]"},
    "pricing.py": {"if items > BULK_MIN_ITEMS:", "return 0"},
    "inventory.py": {"product_id = line.product.id"},
}


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {
        _anchor(line.lstrip("#"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and resolved.suffix == ".md"
        if not resolved.exists() or (missing_anchor and anchor not in _anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name} links to missing files or anchors: {broken}"


def test_demo_line_references_point_at_the_statements_meant() -> None:
    found = 0
    for page in (ROOT / "README.md", ROOT / "docs" / "quickstart.md"):
        for name, number in SHOP_LINE.findall(page.read_text(encoding="utf-8")):
            line = (SHOP / name).read_text().splitlines()[int(number) - 1].strip()
            assert line in PROBED_STATEMENTS.get(name, set()), (
                f"{page.name} sends people to shop/{name}:{number}, which is now {line!r}"
            )
            found += 1
    assert found >= 3


def test_the_launcher_suggests_the_same_line_as_the_readme() -> None:
    from peephole.demo.launcher import probe_hint

    probe_file, line, _ = probe_hint()
    assert f"{probe_file}:{line}" in (ROOT / "README.md").read_text()


def test_architecture_shows_every_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    layout = text.split("## Folder layout", 1)[1]
    source = ROOT / "src" / "peephole"
    for init in sorted(source.rglob("__init__.py")):
        package = init.parent.relative_to(source).as_posix()
        if package == "." or "migrations/" in package:
            continue
        assert f"{package.rsplit('/', 1)[-1]}/" in layout, f"{package} is missing"


def test_statements_referenced_exist_in_the_code() -> None:
    for name, statements in PROBED_STATEMENTS.items():
        source = (SHOP / name).read_text()
        ast.parse(source)
        lines = {line.strip() for line in source.splitlines()}
        assert statements <= lines, name
