"""WSGI middleware: exceptions that escape the application (or its response body) are captured.

For any WSGI framework without its own integration::

    from peephole.agent.integrations.wsgi import PeepholeMiddleware
    app = PeepholeMiddleware(app)

Frameworks that turn exceptions into a 500 themselves (Flask, Django) never let them reach
a middleware: their integrations hook the framework instead and are enabled automatically.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional

from peephole.agent.exception_capture import capture_active

__all__ = ["PeepholeMiddleware"]

WSGIApp = Callable[[Any, Any], Iterable[bytes]]


class PeepholeMiddleware:
    """Wrap a WSGI application; capture what it raises, then let the exception continue."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        try:
            body = self.app(environ, start_response)
        except Exception as exc:
            capture_active(exc, "wsgi")
            raise
        if isinstance(body, (list, tuple)):
            return body  # nothing left to run
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            return body  # the server may send it with sendfile(); reading a file is not app code
        return _Body(body)


class _Body:
    """The response iterable, with exceptions raised while producing it captured too."""

    def __init__(self, body: Iterable[bytes]) -> None:
        self._body = body
        self._iterator: Optional[Iterator[bytes]] = None

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._body)
        try:
            return next(self._iterator)
        except StopIteration:
            raise
        except Exception as exc:
            capture_active(exc, "wsgi")
            raise

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:
                capture_active(exc, "wsgi")
                raise
