"""``create_app(settings)``: the ASGI application (REST, agent gateway, live stream)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import peephole
from peephole import protocol
from peephole.server import ui
from peephole.server.api import admin, events, probes, services
from peephole.server.api import responses as api_responses
from peephole.server.broker import Broker
from peephole.server.cluster import Cluster
from peephole.server.db import Database
from peephole.server.edge import Edge, hide_tokens_in_logs
from peephole.server.gateway import agent_endpoint
from peephole.server.settings import ServerSettings
from peephole.server.sidekick import route as sidekick
from peephole.server.store import NotFound, credentials
from peephole.server.store import instances as instance_store
from peephole.server.stream import stream_endpoint

__all__ = ["announce_credentials", "app_from_environment", "create_app"]

log = logging.getLogger("peephole.server")


def create_app(settings: ServerSettings) -> FastAPI:
    """Open and migrate the database, seed credentials, and build the app.

    Credentials created at random on a first start are in ``app.state.new_credentials``
    (the caller prints them once; only their hashes are stored).
    """
    db = Database(settings.database)
    db.migrate()
    new_credentials = db.run(
        lambda s: credentials.seed(s, settings.admin_token, settings.agent_key), exclusive=True
    )
    if db.is_sqlite:  # one process owns a SQLite file: connections of a past run are gone
        db.run(instance_store.disconnect_all)
    broker = Broker(settings, db)
    if not db.is_sqlite:
        broker.cluster = Cluster(broker, db.url)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        work = [broker.housekeeping(), broker.retention()]
        if broker.cluster is not None:
            work += [broker.cluster.listen_forever(), broker.cluster.send_forever()]
        tasks = [asyncio.create_task(w) for w in work]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            db.close()

    app = FastAPI(
        title="peephole",
        version=peephole.__version__,
        description="Live debugger for Python services: probes, events, exceptions.",
        lifespan=lifespan,
    )
    app.state.broker = broker
    app.add_middleware(Edge)  # authenticate and cap bodies before they are read
    hide_tokens_in_logs()
    app.state.new_credentials = new_credentials
    for router in (admin.router, services.router, probes.router, events.router):
        app.include_router(router, prefix="/api/v1", responses=api_responses.ERRORS)
    app.add_api_websocket_route(protocol.AGENT_PATH, agent_endpoint)
    app.add_api_websocket_route("/api/v1/stream", stream_endpoint)
    app.add_api_websocket_route(sidekick.PATH, sidekick.sidekick_endpoint)  # Sidekick agents
    ui.mount(app)  # the web UI at /, on the same origin as the API

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        gauges: dict[str, float] = {
            "agents_connected": len(broker.hub.agents),
            "stream_subscribers": len(broker.hub.subscribers),
            "uptime_seconds": round(time.time() - broker.started_at, 3),
        }
        text = broker.metrics.render(gauges)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app


def announce_credentials(app: FastAPI) -> None:
    """Print the credentials a first start created; they are never shown again."""
    for name, value in app.state.new_credentials.items():
        label = name.replace("_", " ")
        print(f"peephole: new {label} (shown once, stored hashed): {value}", flush=True)


def app_from_environment() -> Any:
    """An app configured by ``PEEPHOLE_SERVER_*``, for running under another ASGI server
    or several workers: ``uvicorn --factory peephole.server.app:app_from_environment``
    (several processes need PostgreSQL; see ``peephole.server.cluster``)."""
    app = create_app(ServerSettings.load())
    announce_credentials(app)
    return app
