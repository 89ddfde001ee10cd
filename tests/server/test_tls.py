"""With a certificate and key the server speaks HTTPS and WSS only."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from peephole import protocol

from .conftest import AGENT_KEY, FakeAgent

pytestmark = pytest.mark.server


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


async def test_https_and_wss(server_factory: Any, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    server = server_factory(cert=cert, key=key)
    base = f"https://127.0.0.1:{server.settings.port}"
    health = httpx.get(base + "/api/v1/health", verify=ssl.create_default_context(cafile=cert))
    assert health.json()["status"] == "ok"
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/api/v1/health")  # not trusted without the CA
    context = ssl.create_default_context(cafile=cert)
    async with connect(
        f"wss://127.0.0.1:{server.settings.port}{protocol.AGENT_PATH}", ssl=context
    ) as ws:
        info = FakeAgent(server).info.to_dict()
        await ws.send(protocol.encode({"type": "hello", "key": AGENT_KEY, "instance": info}))
        assert protocol.decode(await ws.recv())["type"] == "welcome"
