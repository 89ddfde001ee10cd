"""Upgrade headers -> the peephole instance (recorded from the real agents)."""

from __future__ import annotations

import pytest

from peephole import messages
from peephole.agent.safe.redaction import MASK
from peephole.server.sidekick import identity
from sidekick.fixture_frames import frames

UPGRADES = frames("upgrade")


def test_there_are_recorded_upgrades_of_both_runtimes() -> None:
    runtimes = {f["x-sidekick-app-runtime"] for _, f in UPGRADES}
    assert {"nodejs", "python"} <= runtimes


@pytest.mark.parametrize("headers", [f for _, f in UPGRADES], ids=[n for n, _ in UPGRADES])
def test_every_recorded_upgrade_is_a_valid_instance(headers: dict[str, str]) -> None:
    info = identity.instance_info(headers, 1000.0)
    messages.agent_message({"type": "hello", "key": "k", "instance": info.to_dict()})
    assert info.service == headers["x-sidekick-app-name"]
    assert info.environment == "dev" and info.version == "1.2.3"
    assert info.tags == {"team": "core"}  # Python sends x-sidekick-app-tag-.team
    assert info.agent_version == "sidekick"
    assert identity.api_key(headers) == headers["x-sidekick-api-key"]


def test_node_pid_comes_from_its_instance_id() -> None:
    node = next(f for _, f in UPGRADES if f["x-sidekick-app-runtime"] == "nodejs")
    info = identity.instance_info(node, 0.0)
    assert info.pid == int(node["x-sidekick-app-instance-id"].split(":")[0])
    assert identity.runtime_kind(node) == identity.NODE


def test_python_has_no_pid_and_a_long_id_is_shortened_stably() -> None:
    own = "a-rather-long-application-name:343e6043-441d-4554-a611-036ab3ff6d35@build-host-17"
    headers = {
        identity.INSTANCE_ID: own,
        "x-sidekick-app-runtime": "python",
        "x-sidekick-app-hostname": "vm",
    }
    info = identity.instance_info(headers, 0.0)
    assert info.pid == 0
    assert len(info.instance_id) == 64 and info.instance_id.startswith(own[:40])
    assert identity.instance_info(headers, 1.0).instance_id == info.instance_id
    assert info.service == "vm"  # Python's default app name is empty: the host, as Node does


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({"x-sidekick-app-runtime": "python"}, "missing x-sidekick-app-instance-id"),
        ({identity.INSTANCE_ID: "x", "x-sidekick-app-runtime": "go"}, "unknown"),
    ],
)
def test_refused_headers(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(identity.Refused, match=reason):
        identity.instance_info(headers, 0.0)


def test_a_missing_key_is_refused() -> None:
    with pytest.raises(identity.Refused, match="x-sidekick-api-key"):
        identity.api_key({})


def test_secret_tags_are_masked() -> None:
    headers = {
        identity.INSTANCE_ID: "x",
        "x-sidekick-app-runtime": "nodejs",
        "x-sidekick-app-tag-db_password": "hunter2",
        "x-sidekick-app-tag-.region": "eu",
    }
    assert identity.instance_info(headers, 0.0).tags == {"db_password": MASK, "region": "eu"}
