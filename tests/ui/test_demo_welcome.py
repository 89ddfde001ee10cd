"""``python3 dev.py demo`` ends with the web UI's address and how to sign in."""

from __future__ import annotations

from pathlib import Path

import pytest

from peephole.demo.launcher import Credentials, Demo

from .conftest import Env

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_the_demo_welcome_leads_with_the_web_ui_and_its_sign_in(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Demo(tmp_path, 1, traffic=False, shop_port=2, data_dir=tmp_path / "data")
    demo.server_url = env.server.url  # the real server of these tests serves the UI at /
    demo.credentials = Credentials(admin_token="pht_demo", agent_key="phk_demo")
    demo.print_welcome()
    out = capsys.readouterr().out
    assert f"web UI       {env.server.url}/  (sign in with the admin token below)" in out
    assert f"In the browser: open {env.server.url}/, sign in with the admin token" in out
    assert "admin token  pht_demo" in out
