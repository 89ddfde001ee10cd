"""The plain WSGI and ASGI middlewares, for frameworks without an integration of their own."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import httpx

from integrations.capture_harness import Harness, serve_asgi, serve_wsgi
from peephole.agent.integrations import asgi, wsgi


def failing_wsgi_app(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/body":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return streaming_body(path)
    raise ConnectionError("database unreachable", path)


def streaming_body(path: str) -> Iterator[bytes]:
    chunk = b"first"
    yield chunk
    raise TimeoutError("stream stalled", path)


def test_wsgi_middleware_captures_calls_and_bodies(capturing: Harness) -> None:
    with serve_wsgi(wsgi.PeepholeMiddleware(failing_wsgi_app)) as url:
        assert httpx.get(f"{url}/call").status_code == 500
        try:
            httpx.get(f"{url}/body")
        except httpx.HTTPError:
            pass  # the body broke after the headers were sent
    first, second = capturing.events
    assert first["origin"] == "wsgi" and first["exc_type"] == "ConnectionError"
    assert first["frames"][0]["locals"]["path"]["v"] == "/call"
    assert second["origin"] == "wsgi" and second["exc_type"] == "TimeoutError"
    assert second["frames"][0]["function"] == "streaming_body"
    assert second["frames"][0]["locals"]["chunk"] == {"t": "bytes", "v": "first", "len": 5}


async def failing_asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    request_path = scope["path"]
    raise PermissionError("forbidden", request_path)


def test_asgi_middleware_captures_what_the_app_raises(capturing: Harness) -> None:
    with serve_asgi(asgi.PeepholeMiddleware(failing_asgi_app)) as url:
        assert httpx.get(f"{url}/secret").status_code == 500
    [event] = capturing.events
    assert event["origin"] == "asgi" and event["exc_type"] == "PermissionError"
    assert event["frames"][0]["locals"]["request_path"]["v"] == "/secret"
