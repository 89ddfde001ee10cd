"""Run the server: ``serve(**flags)`` for the ``peephole server`` command, or
``python -m peephole.server.main``."""

from __future__ import annotations

import argparse
import gc
import logging
from typing import Any, Optional

import uvicorn

from peephole import protocol
from peephole.server.app import announce_credentials, create_app
from peephole.server.settings import ServerSettings

WS_MAX_SIZE = 4 * protocol.MAX_MESSAGE_BYTES  # bigger frames are cut by uvicorn (1009)


def uvicorn_config(settings: ServerSettings, app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.cert,
        ssl_keyfile=settings.key,
        ws_max_size=WS_MAX_SIZE,
        # Compression costs CPU on both ends, and an agent's CPU is its host application's.
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_level=settings.log_level,
        lifespan="on",
    )


def run_server(settings: ServerSettings) -> None:
    """Migrate, print first-start credentials once, and serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Event batches are short-lived but many containers: with the default thresholds they
    # reach the oldest generation and trigger full collections of the whole heap (28% of
    # ingest time, measured with py-spy; docs/benchmarks.md "Server").
    gc.set_threshold(20_000, 50, 100)
    app = create_app(settings)
    announce_credentials(app)
    scheme = "https" if settings.tls else "http"
    print(f"peephole: serving on {scheme}://{settings.host}:{settings.port}", flush=True)
    uvicorn.Server(uvicorn_config(settings, app)).run()


def serve(
    host: Optional[str] = None,
    port: Optional[int] = None,
    data_dir: Optional[str] = None,
    database: Optional[str] = None,
    cert: Optional[str] = None,
    key: Optional[str] = None,
    trace_link_template: Optional[str] = None,
    retention_days: Optional[float] = None,
    retention_events: Optional[int] = None,
    admin_token: Optional[str] = None,
    agent_key: Optional[str] = None,
) -> None:
    """The ``peephole server`` command: flags given here win over ``PEEPHOLE_SERVER_*``."""
    run_server(
        ServerSettings.load(
            host=host,
            port=port,
            data_dir=data_dir,
            database=database,
            cert=cert,
            key=key,
            trace_link_template=trace_link_template,
            retention_days=retention_days,
            retention_events=retention_events,
            admin_token=admin_token,
            agent_key=agent_key,
        )
    )


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m peephole.server.main")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--database")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--trace-link-template")
    parser.add_argument("--retention-days", type=float)
    parser.add_argument("--retention-events", type=int)
    parser.add_argument("--admin-token")
    parser.add_argument("--agent-key")
    serve(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
