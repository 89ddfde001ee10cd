"""A page that runs the UI's ES modules as the server serves them, without a server: the
browser fetches ``http://ui.test/<name>.js`` from server/ui/static and the page from memory."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, Route

from peephole.server.ui import render

STATIC = Path(render.__file__).parent / "static"
ORIGIN = "http://ui.test"


def static_page(browser: Browser, html: str, script: str) -> Page:
    """A new page at ``ORIGIN/`` holding ``html``, then ``script`` run as a module."""
    page = browser.new_page()
    files = {
        "/": (f'{html}<script type="module" src="/page.js"></script>', "text/html"),
        "/page.js": (script, "text/javascript"),
    }

    def serve(route: Route) -> None:
        name = route.request.url.removeprefix(ORIGIN)
        if name in files:
            body, kind = files[name]
            route.fulfill(body=body, content_type=kind)
        else:
            route.fulfill(path=STATIC / name.lstrip("/"), content_type="text/javascript")

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/")
    return page
