"""Serving the shop over HTTP with the standard library, one thread per request."""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from peephole.demo.shop.app import ShopApp

access_log = logging.getLogger("shop.access")


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow request never keeps the process from exiting


class QuietHandler(WSGIRequestHandler):
    """Access lines go to the ``shop.access`` logger instead of straight to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        access_log.info(format, *args)


def make_shop_server(
    host: str = "127.0.0.1", port: int = 8000, app: Optional[ShopApp] = None
) -> WSGIServer:
    """A server for ``app`` (default: a new shop), bound and ready for ``serve_forever()``."""
    return make_server(
        host, port, app or ShopApp(), server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )


__all__ = ["make_shop_server"]  # at the end: the docs cite this module's line numbers
