"""Which code is the application's: one rule on each side, checked on a table of paths.

The server and the CLI see only the paths the agent reports (``protocol.is_library_path``);
the agent also knows its own files and the interpreter's (``agent.code_kind``)."""

from __future__ import annotations

import os
import sysconfig

import pytest

from peephole import protocol
from peephole.agent import code_kind
from peephole.agent.code_kind import AGENT, APP, LIBRARY, STDLIB
from peephole.cli.source import application_first
from peephole.server.ui import render

STDLIB_DIR = os.path.dirname(os.__file__)
AGENT_DIR = os.path.dirname(code_kind.__file__)

PATHS = [
    ("/srv/shop/shop/cart.py", False),
    ("shop/cart.py", False),
    ("/srv/my-site-packages-app/cart.py", False),
    ("/venv/lib/python3.12/site-packages/flask/app.py", True),
    ("/usr/lib/python3/dist-packages/bytecode/concrete.py", True),
    ("/usr/lib/python3.11/decimal.py", True),
    ("C:\\Python311\\Lib\\json\\decoder.py", True),
    ("C:\\app\\venv\\Lib\\site-packages\\requests\\api.py", True),
    ("C:\\srv\\shop\\cart.py", False),
]


@pytest.mark.parametrize(("path", "library"), PATHS)
def test_the_ui_and_the_cli_fold_the_same_paths(path: str, library: bool) -> None:
    assert protocol.is_library_path(path) is library
    assert render.is_library(path) is library
    other = "/srv/app.py" if library else "/venv/lib/python3.12/site-packages/a.py"
    assert application_first([path, other]) == ([other, path] if library else [path, other])


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("/srv/shop/shop/cart.py", APP),
        ("<string>", APP),
        ("/venv/lib/python3.12/site-packages/flask/app.py", LIBRARY),
        ("/usr/lib/python3/dist-packages/bytecode/concrete.py", LIBRARY),
        ("<frozen importlib._bootstrap>", STDLIB),
        (os.path.join(STDLIB_DIR, "decimal.py"), STDLIB),
        (os.path.join(sysconfig.get_paths()["stdlib"], "json", "decoder.py"), STDLIB),
        (os.path.join(AGENT_DIR, "core.py"), AGENT),
        (os.path.join(AGENT_DIR, "placement", "paths.py"), AGENT),
    ],
)
def test_the_agent_classifies_code_by_its_file(filename: str, kind: str) -> None:
    assert code_kind.code_kind(filename) == kind
