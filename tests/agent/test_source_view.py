"""The source view serves only what may leave the process (issue 10 item 5, issue 15 item 7)."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Callable, Dict

import pytest
from targets import hardcoded, shop, shop_settings  # noqa: F401 - loaded, so servable

from conftest import TARGETS, line_of, shop_line
from peephole.agent.core import Agent
from peephole.agent.placement.source import mask_source
from peephole.agent.safe.redaction import Redactor
from peephole.protocol import AgentPolicy

SECRETS = [
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "hunter2-in-source",
    "MIIEpAIBAAKCAQEA75bKQk1TXkv7x",
    "pg-pass-in-source",
    "tok-default-in-source",
]


def test_served_source_masks_secret_literals_and_keeps_line_numbers(agent: Agent) -> None:
    served = agent.get_source("targets/hardcoded.py")
    text: str = served["text"]
    for secret in SECRETS:
        assert secret not in text
    assert "db.internal" in text and '"hello"' in text  # ordinary literals stay
    original = (TARGETS / "hardcoded.py").read_text()
    assert len(text.splitlines()) == len(original.splitlines())
    lines = text.splitlines()
    assert lines[line_of(TARGETS / "hardcoded.py", "charge") - 1].endswith("# @charge")
    assert line_of(TARGETS / "hardcoded.py", "charge") in served["lines"]


def test_settings_modules_are_neither_listed_nor_served(agent: Agent) -> None:
    assert not any(f.endswith("shop_settings.py") for f in agent.list_files())
    served = agent.get_source("targets/shop_settings.py")
    assert "text" not in served and "deny-list" in served["error"]


def test_no_answer_tells_whether_a_path_exists_on_the_host(agent: Agent) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write("X = 1\n")
    try:
        existing = agent.get_source(handle.name)
        missing = agent.get_source(handle.name[:-3] + "_not_there.py")
    finally:
        os.unlink(handle.name)

    def without_path(answer: Dict[str, Any], path: str) -> str:
        return str(answer["error"]).replace(path, "<path>")

    assert "text" not in existing
    assert without_path(existing, handle.name) == without_path(
        missing, handle.name[:-3] + "_not_there.py"
    )


def test_application_files_first_and_never_the_agent_or_its_dependencies(agent: Agent) -> None:
    files = agent.list_files()
    own = os.sep + "peephole" + os.sep
    assert not [f for f in files if own in f and os.sep + "demo" + os.sep not in f]
    for dependency in ("websockets", "bytecode", "_distutils_hack"):
        assert not [f for f in files if os.sep + dependency + os.sep in f]
    kinds = ["library" if "-packages" + os.sep in f else "app" for f in files]
    assert kinds == sorted(kinds, key=lambda kind: kind == "library")
    assert any(f.endswith("targets/hardcoded.py") for f in files)
    assert "error" in agent.get_source(sys.modules["peephole.agent.core"].__file__ or "")


def test_an_admin_policy_turns_the_view_off_and_adds_to_the_deny_list(agent: Agent) -> None:
    agent.set_policy(AgentPolicy(source_deny=["hardcoded.py"]))
    assert "deny-list" in agent.get_source("targets/hardcoded.py")["error"]
    assert "text" in agent.get_source("targets/shop.py")
    agent.set_policy(AgentPolicy(serve_source=False))
    assert agent.list_files() == []
    assert "turned off" in agent.get_source("targets/shop.py")["error"]
    agent.set_policy(AgentPolicy())
    assert "text" in agent.get_source("targets/shop.py")


def test_the_agent_setting_turns_the_view_off(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent(serve_source=False)
    assert agent.list_files() == []
    assert "turned off" in agent.get_source("targets/shop.py")["error"]


@pytest.mark.parametrize(
    ("source", "hidden", "kept"),
    [
        ('SECRET_KEY = "django-insecure-x1"\n', "django-insecure-x1", "SECRET_KEY"),
        ('password: str = "two words"\n', "two words", "password: str"),
        ('conf["api_key"] = "k-123"\n', "k-123", 'conf["api_key"]'),
        ("PIN = 4321\nCOUNT = 4321\n", "PIN = 4321", "COUNT = 4321"),
        ("CARD = 4111111111111111\n", "4111111111111111", "CARD"),
        ('url = f"postgres://u:pw-in-f@h/{1}"\n', "pw-in-f", "postgres://u:"),
    ],
)
def test_mask_source_literals(source: str, hidden: str, kept: str) -> None:
    masked = mask_source(source, Redactor())
    assert hidden not in masked and kept in masked
    assert masked.count("\n") == source.count("\n")


def test_untokenizable_text_is_masked_line_by_line() -> None:
    source = 'x = """unclosed\npassword=hunter2\n'
    masked = mask_source(source, Redactor())
    assert "hunter2" not in masked and masked.count("\n") == 2


def test_literals_after_a_form_feed_are_masked_in_place() -> None:
    source = 'A = 1\n\x0c\nPASSWORD = "hunter2-ff"\nB = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"\n'
    masked = mask_source(source, Redactor())
    assert masked.split("\n")[:2] == source.split("\n")[:2]
    assert masked.split("\n")[2] == 'PASSWORD = "[redacted]"'
    assert masked.split("\n")[3] == 'B = "[redacted]"'


def test_source_is_served_with_its_probe_lines(agent: Agent) -> None:
    served = agent.get_source("targets/shop.py")
    assert served["text"] == (TARGETS / "shop.py").read_text()
    lines = served["lines"]
    assert isinstance(lines, list)
    assert shop_line("method") in lines
    assert shop_line("multi-middle") in lines
    assert 3 not in lines  # module level
    assert "error" in agent.get_source("nowhere/missing_module_x.py")
