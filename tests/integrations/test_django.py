"""Django: a failing view, served for real, becomes one grouped exception with its locals."""

from __future__ import annotations

from typing import Any, Iterator

import django
import httpx
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from integrations.capture_harness import Harness, serve_wsgi


def view_order(request: HttpRequest, order_id: int) -> HttpResponse:
    coupon = "SPRING"
    total = order_id * 5
    if total:
        raise LookupError("no such coupon", coupon)
    return HttpResponse("ok")


def view_health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("orders/<int:order_id>", view_order), path("health", view_health)]


@pytest.fixture(scope="module")
def wsgi_app() -> Iterator[Any]:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["127.0.0.1"],
            SECRET_KEY="tests-only",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    yield get_wsgi_application()


def test_a_failing_view_is_one_group_with_the_views_locals(
    wsgi_app: Any, capturing: Harness
) -> None:
    with serve_wsgi(wsgi_app) as url:
        statuses = [httpx.get(f"{url}/orders/{n}").status_code for n in (1, 2)]
        assert httpx.get(f"{url}/health").status_code == 200
    capturing.exceptions.flush()
    assert statuses == [500, 500]
    events = capturing.events
    assert {e["fingerprint"] for e in events} == {events[0]["fingerprint"]}
    assert sum(e["count"] for e in events) == 2
    snapshot = events[0]
    assert snapshot["origin"] == "django"
    assert snapshot["exc_type"] == "LookupError"
    assert snapshot["message"] == "('no such coupon', 'SPRING')"
    view = snapshot["frames"][0]
    assert view["function"] == "view_order" and view["app"] is True
    assert view["locals"]["total"] == {"t": "int", "v": 5}
    assert view["locals"]["request"]["t"] == "django.core.handlers.wsgi.WSGIRequest"
