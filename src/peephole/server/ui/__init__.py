"""The web UI, served by ``peephole server`` at ``/`` on the same origin as the REST API.

Pages are rendered on the server with Jinja2 (templates in ``templates/`` beside the routes
that render them) from the same store functions and REST handlers the API uses; a vendored
htmx swaps small parts, and a few plain ES modules in ``static/`` draw the variable tree and
follow the live stream. There is no build step.

Captured values are hostile input: templates autoescape, scripts only ever set
``textContent``, and every page is sent with a Content-Security-Policy that allows no inline
script or style.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from peephole import protocol
from peephole.server.broker import Broker
from peephole.server.ui import render
from peephole.server.ui.session import SignInNeeded, Viewer

__all__ = ["broker_of", "environment", "mount", "page"]

HERE = Path(__file__).parent
HTMX = "htmx-2.0.4.min.js"  # npm htmx.org@2.0.4, licence in static/htmx-2.0.4.LICENSE
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    ago=render.ago,
    until=render.until,
    clock=render.clock,
    one_line=render.one_line,
    printable=protocol.printable,
    cut_word=render.cut_word,
)
environment.globals["htmx"] = HTMX
environment.globals["log_levels"] = protocol.LOG_LEVELS  # the probe form's choices
environment.globals["now"] = time.time  # pages give it to /live: events since they were made
# Variable trees are embedded as JSON (``tojson``): unsorted and compact, 10,000 nodes fast.
environment.policies["json.dumps_kwargs"] = {"sort_keys": False, "separators": (",", ":")}
templates = Jinja2Templates(env=environment)


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def page(
    request: Request,
    name: str,
    viewer: Optional[Viewer],
    status: int = 200,
    **context: Any,
) -> Response:
    """Render ``name`` with the security headers every UI page carries."""
    return templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, **context},
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def mount(app: FastAPI) -> None:
    """Add the UI's pages, live stream and static files to the server's app."""
    from peephole.server.ui import admin, events, live, pages, probes, source

    for module in (pages, source, probes, events, live, admin):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/static/ui", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, _: SignInNeeded) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={_next(request)}", status_code=303)


def _next(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return quote(target, safe="")
