"""Server settings from flags and PEEPHOLE_SERVER_* variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from peephole.agent.config import AgentConfig, ConfigError
from peephole.server.app import app_from_environment
from peephole.server.settings import ServerSettings, SettingsError

pytestmark = pytest.mark.server


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    environ = {
        "PEEPHOLE_SERVER_PORT": "8000",
        "PEEPHOLE_SERVER_HOST": "0.0.0.0",
        "PEEPHOLE_SERVER_DATA_DIR": str(tmp_path),
        "PEEPHOLE_SERVER_RETENTION_DAYS": "2",
    }
    settings = ServerSettings.load(environ, port=9000)
    assert (settings.port, settings.host, settings.retention_days) == (9000, "0.0.0.0", 2.0)
    assert settings.database == f"sqlite:///{tmp_path / 'peephole.db'}"


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PEEPHOLE_SERVER_PORT='x'"):
        ServerSettings.load({"PEEPHOLE_SERVER_PORT": "x"})
    with pytest.raises(SettingsError, match="both --cert and --key"):
        ServerSettings.load({}, cert="c.pem", data_dir=str(tmp_path))
    with pytest.raises(SettingsError, match="unknown server setting"):
        ServerSettings.load({}, colour="blue")


def test_app_factory_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEEPHOLE_SERVER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PEEPHOLE_SERVER_TRACE_LINK_TEMPLATE", "https://t/{trace_id}")
    app = app_from_environment()
    assert app.state.broker.settings.trace_link_template == "https://t/{trace_id}"
    assert set(app.state.new_credentials) == {"admin_token", "agent_key"}
    assert (tmp_path / "peephole.db").exists()
    assert (tmp_path / "peephole.db").stat().st_mode & 0o777 == 0o600
    app.state.broker.db.close()


@dataclass
class _SettingsWithASwitch(ServerSettings):
    """The server's settings with a boolean, as the agent's have: both read variables alike."""

    verbose: bool = False


@pytest.mark.parametrize("raw", ["maybe", "tru", "2"])
def test_a_bad_boolean_is_refused_by_the_agent_and_the_server_alike(raw: str) -> None:
    with pytest.raises(SettingsError) as server_error:
        _SettingsWithASwitch.load({"PEEPHOLE_SERVER_VERBOSE": raw})
    with pytest.raises(ConfigError) as agent_error:
        AgentConfig.load({"PEEPHOLE_CAPTURE_EXCEPTIONS": raw})
    expected = "is not a valid boolean (1/true/yes/on or 0/false/no/off)"
    assert str(server_error.value) == f"PEEPHOLE_SERVER_VERBOSE={raw!r} {expected}"
    assert str(agent_error.value) == f"PEEPHOLE_CAPTURE_EXCEPTIONS={raw!r} {expected}"
