"""From the path and line a person gives to code objects, and the clear errors on the way."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import types
from pathlib import Path
from typing import Iterator, List

import pytest

from conftest import TARGETS, shop_line
from peephole.agent.placement.instrument import new_backend
from peephole.agent.placement.locate import locate
from peephole.agent.placement.paths import (
    LocateError,
    NotLoaded,
    normalize_path,
    path_matches,
    resolve_file,
)
from peephole.agent.placement.statements import SourceMap, Unit

SHOP = str(TARGETS / "shop.py")


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    """Two packages with a ``util.py`` each, on sys.path, removed after the test."""
    for package in ("alpha", "beta"):
        folder = tmp_path / "src" / package
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "util.py").write_text("def f():\n    return 1\n")
    sys.path.insert(0, str(tmp_path / "src"))
    yield tmp_path
    sys.path.remove(str(tmp_path / "src"))
    for name in [n for n in sys.modules if n.split(".")[0] in ("alpha", "beta", "gamma")]:
        del sys.modules[name]


def _locate(path: str, line: int) -> List[str]:
    backend = new_backend()
    resolution = locate(path, line, backend.instructions, backend.unwrap)
    return [target.code.co_name for target in resolution.targets]


def test_normalize() -> None:
    assert normalize_path("./shop//cart.py") == "shop/cart.py"
    assert normalize_path("shop\\cart.py") == "shop/cart.py"
    assert normalize_path("/srv/app/./shop.py") == "/srv/app/shop.py"


@pytest.mark.parametrize(
    ("wanted", "filename", "expected"),
    [
        ("shop/cart.py", "/srv/app/src/shop/cart.py", True),
        ("cart.py", "/srv/app/src/shop/cart.py", True),
        ("op/cart.py", "/srv/app/src/shop/cart.py", False),  # not at a component boundary
        ("src/shop/cart.py", "/srv/app/src/shop/cart.py", True),
        ("shop/cart.py", "/srv/app/src/shop/cart.pyc", False),
        ("/srv/app/src/shop/cart.py", "/srv/app/src/shop/cart.py", True),
        ("/other/shop/cart.py", "/srv/app/src/shop/cart.py", False),
    ],
)
def test_suffix_matching_at_component_boundaries(
    wanted: str, filename: str, expected: bool
) -> None:
    assert path_matches(wanted, filename) is expected


@pytest.mark.parametrize("path", ["agent/targets/shop.py", "./targets/shop.py", "shop.py", SHOP])
def test_paths_resolve_to_the_loaded_file(path: str) -> None:
    import targets.shop  # noqa: F401

    if (
        path == "shop.py"
        and sum(
            1 for f in sys.modules.values() if str(getattr(f, "__file__", "")).endswith("/shop.py")
        )
        > 1
    ):
        pytest.skip("another shop.py is loaded in this process")
    assert os.path.samefile(resolve_file(path), SHOP)
    assert _locate(path, shop_line("method")) == ["add"]


def test_an_ambiguous_path_lists_the_candidates(tree: Path) -> None:
    importlib.import_module("alpha.util")
    importlib.import_module("beta.util")
    with pytest.raises(LocateError) as error:
        resolve_file("util.py")
    message = str(error.value)
    assert "ambiguous" in message
    assert "alpha/util.py" in message and "beta/util.py" in message
    assert os.path.basename(resolve_file("alpha/util.py")) == "util.py"


def test_a_file_on_sys_path_not_imported_yet_is_pending(tree: Path) -> None:
    with pytest.raises(NotLoaded):
        resolve_file("beta/util.py")
    # a longer path than sys.path shows: "src/beta/util.py" with src/ on sys.path
    with pytest.raises(NotLoaded):
        resolve_file("src/beta/util.py")


def test_no_such_file() -> None:
    with pytest.raises(LocateError) as error:
        resolve_file("nowhere/missing_module_x.py")
    assert not isinstance(error.value, NotLoaded)
    assert "no such file" in str(error.value)


@pytest.mark.parametrize("path", ["templates/cart.html", "emails/welcome.j2"])
def test_a_template_is_refused_with_the_reason(path: str) -> None:
    with pytest.raises(LocateError, match="template"):
        resolve_file(path)


def test_a_non_python_file_is_refused() -> None:
    with pytest.raises(LocateError, match="not a Python source file"):
        resolve_file("shop/cart.rb")


def test_no_code_at_a_line_names_the_nearest_lines_with_code() -> None:
    blank = shop_line("closure") + 2  # the blank line after the closure's body
    with pytest.raises(LocateError) as error:
        _locate(SHOP, blank)
    message = str(error.value)
    assert f"no code at line {blank}" in message
    assert f"{blank - 1}" in message  # "return reduced" just above


def test_module_level_code_that_already_ran() -> None:
    with pytest.raises(LocateError, match="module-level"):
        _locate(SHOP, 3)  # from __future__ import annotations


def test_a_def_line_of_a_module_level_function_points_at_its_body() -> None:
    with pytest.raises(LocateError, match="place the probe on a line of its body"):
        _locate(SHOP, shop_line("total-start") - 1)


def test_a_nested_def_line_fires_in_the_parent() -> None:
    assert _locate(SHOP, shop_line("closure") - 1) == ["make_discount"]


def test_a_docstring_has_no_code(tmp_path: Path) -> None:
    source = SourceMap.parse(
        textwrap.dedent('''\
        def f(x):
            """Doc."""
            y = x + 1
            return y
        ''')
    )
    assert source.probe_lines() == [3, 4]
    assert source.nearest(2) == [3]


def test_statements_by_line() -> None:
    source = SourceMap.parse(
        textwrap.dedent("""\
        def f(items):
            total = sum(
                items,
            )
            for item in items:
                if item:
                    pass
            try:
                x = 1
            except ValueError:
                x = 2
            return total
        """)
    )

    def unit_at(line: int) -> Unit:
        unit = source.unit_at(line)
        assert unit is not None, line
        return unit

    unit = unit_at(3)
    assert unit.kind == "Assign" and (unit.first, unit.last) == (2, 4)
    assert unit_at(5).kind == "For"
    assert unit_at(10).kind == "ExceptHandler"
    assert unit_at(1).in_function is False
    assert unit_at(9).in_function is True


def test_a_module_that_gets_its_file_late_is_found(tmp_path: Path) -> None:
    """``__main__`` is in ``sys.modules`` before it has a ``__file__`` (``sitecustomize``, and
    so ``peephole run``, runs in between): a probe that came first must still find it."""
    path = tmp_path / "main_like.py"
    path.write_text("def f():\n    return 1\n")
    module = types.ModuleType("main_like_for_peephole")
    sys.modules["main_like_for_peephole"] = module
    try:
        with pytest.raises(NotLoaded):
            resolve_file(str(path))
        module.__file__ = str(path)
        exec(compile(path.read_text(), str(path), "exec"), vars(module))
        assert resolve_file(str(path)) == str(path)
    finally:
        del sys.modules["main_like_for_peephole"]
