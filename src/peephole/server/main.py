"""Run the server: ``serve(**flags)`` for the ``peephole server`` command, or
``python -m peephole.server.main``."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import socket
from typing import Any, Optional

import uvicorn

from peephole import protocol
from peephole.server.app import announce_credentials, create_app
from peephole.server.settings import ServerSettings
from peephole.server.wsprotocol import GatewayWebSocketProtocol

__all__ = ["BindError", "serve", "uvicorn_config"]

WS_MAX_SIZE = 4 * protocol.MAX_MESSAGE_BYTES  # bigger frames are cut by uvicorn (1009)


def uvicorn_config(settings: ServerSettings, app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.cert,
        ssl_keyfile=settings.key,
        ws=GatewayWebSocketProtocol,
        ws_max_size=WS_MAX_SIZE,
        # Compression costs CPU on both ends, and an agent's CPU is its host application's.
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=3,  # whatever connection is left after 3 s is cut
    )


def run_server(settings: ServerSettings) -> None:
    """Migrate, print first-start credentials once, and serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Event batches are short-lived but many containers: with the default thresholds they
    # reach the oldest generation and trigger full collections of the whole heap (28% of
    # ingest time, measured with py-spy; docs/benchmarks.md "Server").
    gc.set_threshold(20_000, 50, 100)
    listener = bind(settings.host, settings.port)  # first: a busy port must not cost the
    app = create_app(settings)  # credentials this first start creates and prints only once
    announce_credentials(app)
    scheme = "https" if settings.tls else "http"
    print(f"peephole: serving on {scheme}://{settings.host}:{settings.port}", flush=True)
    with listener:
        server = uvicorn.Server(uvicorn_config(settings, app))
        app.state.stopping = lambda: server.should_exit  # the web UI's live streams end on it
        server.run(sockets=[listener])


class BindError(Exception):
    """The server cannot listen where it was asked to; nothing was created."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (as uvicorn makes it), or a :class:`BindError`
    saying what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc}"
        raise BindError(
            f"listening on {host}:{port} {reason} (another server?); choose another with "
            "--port. Nothing was created. If an earlier start printed an admin token you no "
            "longer have, start with --admin-token TOKEN to add one you choose"
        ) from None
    sock.set_inheritable(True)
    return sock


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
    try:
        serve(**vars(parser.parse_args(argv)))
    except BindError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
