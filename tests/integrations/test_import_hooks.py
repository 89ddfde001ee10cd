"""Framework integrations are enabled when the application imports the framework after the
agent started (the common case with ``peephole run``), and not before."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import json, sys
import peephole

events = []
agent = peephole.start(service="late-import")
agent.sink = lambda batch: events.extend(batch) or True
assert not any(name in sys.modules for name in ("flask", "django", "starlette", "fastapi"))
"""

APPS = {
    "django": """
from django.conf import settings
from django.urls import path

def view(request):
    coupon = "SPRING"
    raise KeyError(coupon)

urlpatterns = [path("boom", view)]
settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"],
                   SECRET_KEY="tests-only", MIDDLEWARE=[], INSTALLED_APPS=[],
                   LOGGING_CONFIG=None)
import django
django.setup()
from django.test import Client

status = Client(raise_request_exception=False).get("/boom").status_code
""",
    "fastapi": """
import asyncio
import httpx
from fastapi import FastAPI

app = FastAPI()

@app.get("/boom")
def boom():
    coupon = "SPRING"
    raise KeyError(coupon)

async def call():
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return (await client.get("/boom")).status_code

status = asyncio.run(call())
""",
}


@pytest.mark.parametrize("framework", sorted(APPS))
def test_framework_imported_after_the_agent_started_is_hooked(framework: str) -> None:
    script = (
        PRELUDE
        + textwrap.dedent(APPS[framework])
        + textwrap.dedent(
            """
        agent.flush()
        print(json.dumps({"status": status, "events": events}))
        peephole.stop()
        """
        )
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 500
    [event] = report["events"]
    assert event["origin"] == {"django": "django", "fastapi": "starlette"}[framework]
    assert event["frames"][0]["locals"]["coupon"]["v"] == "SPRING"
