"""Config resolution (arguments > environment > saved file > default) and the 0600 file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from peephole.client import PeepholeError, config


def test_path_honours_xdg_config_home(tmp_path: Path) -> None:
    assert config.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "peephole" / "config.json"
    )


def test_path_defaults_to_dot_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.config_path({}) == tmp_path / ".config" / "peephole" / "config.json"


def test_save_writes_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "peephole" / "config.json"
    config.save("http://h:1", "secret", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.load_file(path) == {"url": "http://h:1", "token": "secret"}


def test_save_tightens_an_existing_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    path.chmod(0o644)
    config.save("http://h:1", "secret", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_precedence(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert config.resolve(environ=environ) == config.Settings(config.DEFAULT_URL, None)
    config.save("http://saved:1", "saved-token", config.config_path(environ))
    saved = config.resolve(environ=environ)
    assert (saved.url, saved.token) == ("http://saved:1", "saved-token")
    environ |= {"PEEPHOLE_URL": "http://saved:1/", "PEEPHOLE_TOKEN": "env-token"}
    from_env = config.resolve(environ=environ)
    assert (from_env.url, from_env.token, from_env.token_source) == (
        "http://saved:1",
        "env-token",
        "PEEPHOLE_TOKEN",
    )
    given = config.resolve("http://arg:2", "arg-token", environ=environ)
    assert (given.url, given.token, given.url_source) == ("http://arg:2", "arg-token", "argument")


def test_saved_token_is_not_sent_to_another_server(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    config.save("http://saved:1", "saved-token", config.config_path(environ))
    assert config.resolve("http://other:2", environ=environ).token is None
    assert config.resolve("http://saved:1/", environ=environ).token == "saved-token"


def test_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "peephole" / "config.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(PeepholeError, match=r"cannot read .*config.json.*fix or delete it"):
        config.resolve(environ={"XDG_CONFIG_HOME": str(tmp_path)})
