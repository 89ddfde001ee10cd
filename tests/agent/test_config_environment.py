"""The agent's settings from ``PEEPHOLE_*`` variables: each type parsed, bad values refused
with an error naming the variable (Python 3.9+)."""

from __future__ import annotations

import pytest

from peephole.agent.config import AgentConfig, ConfigError


def test_variables_are_parsed_by_the_type_of_their_setting() -> None:
    config = AgentConfig.load(
        {
            "PEEPHOLE_ENV": "prod",
            "PEEPHOLE_WAIT": "2.5",
            "PEEPHOLE_EXCEPTION_FRAMES": "3",
            "PEEPHOLE_CAPTURE_EXCEPTIONS": "Off",
            "PEEPHOLE_SERVE_SOURCE": " yes ",
            "PEEPHOLE_REDACT_NAMES": "pin, otp,,",
            "PEEPHOLE_TAGS": "team=pay,region=eu",
            "PEEPHOLE_VERSION": "",
            "PEEPHOLE_UNKNOWN": "ignored",
            "PEEPHOLE_LIMITS": "ignored",
        }
    )
    assert (config.environment, config.wait, config.exception_frames) == ("prod", 2.5, 3)
    assert (config.capture_exceptions, config.serve_source) == (False, True)
    assert config.redact_names == ["pin", "otp"]
    assert config.tags == {"team": "pay", "region": "eu"}
    assert config.version is None


@pytest.mark.parametrize(
    "variable, raw, expected",
    [
        (
            "PEEPHOLE_CAPTURE_EXCEPTIONS",
            "maybe",
            "PEEPHOLE_CAPTURE_EXCEPTIONS='maybe' is not a valid boolean"
            " (1/true/yes/on or 0/false/no/off)",
        ),
        (
            "PEEPHOLE_EXCEPTION_FRAMES",
            "3.5",
            "PEEPHOLE_EXCEPTION_FRAMES='3.5' is not a valid integer",
        ),
        ("PEEPHOLE_WAIT", "soon", "PEEPHOLE_WAIT='soon' is not a valid number"),
        ("PEEPHOLE_ENV", "", None),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    variable: str, raw: str, expected: str | None
) -> None:
    if expected is None:  # an empty string setting means "not set"
        assert AgentConfig.load({variable: raw}).environment is None
        return
    with pytest.raises(ConfigError) as error:
        AgentConfig.load({variable: raw})
    assert str(error.value) == expected
