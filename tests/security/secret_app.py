"""The application of the adversarial suite: a real agent in a process full of secrets.

Run as ``python secret_app.py SERVICE SERVER_URL AGENT_KEY LOG_FILE``. It holds every secret of
:mod:`corpus` in every shape (locals, dicts with str and bytes keys, object fields, the real
request objects of Starlette, Werkzeug/Flask, Django, requests and httpx, ``http.cookies``,
header pair lists, the process environment, instance tags, literals in its source) and, on
``hit`` from stdin, runs the probed function and raises exceptions whose messages, args and
locals hold them. It answers ``ready`` and ``done`` on stdout.
"""

# ruff: noqa: F841 - the probed functions' locals are read through their frames
from __future__ import annotations

import http.cookies
import logging
import os
import sys
from typing import Any, Dict, List

import corpus
import shop_config  # noqa: F401 - loaded, so the source view may be asked for it
import shop_settings  # noqa: F401 - loaded, so the source view may be asked for it

os.environ.update(corpus.ENVIRONMENT)  # before the frameworks, like an application's settings

import django
import flask
import httpx
import requests
from django.conf import settings
from starlette.datastructures import Headers
from starlette.requests import Request as StarletteRequest

import peephole

settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="x" * 50)
django.setup()
from django.http import HttpRequest  # noqa: E402

# The module's globals are the locals of its frame, captured like any other: the application
# names what holds its secrets, as a real one would (an innocent name would show them).
SECRET_HEADERS = {
    label.split(" ", 1)[1]: s.value
    for label, s in ((s.label, s) for s in corpus.framework_secrets().values())
}
SECRET_VALUES = {s.label: s.value for s in corpus.name_secrets()}
FORMATS = [s.value for s in corpus.format_secrets()]


class Holder:
    """An application object with secret-named fields (set by name, spaces and dots too)."""


def holders() -> List[Holder]:
    made: List[Holder] = []
    for index, name in enumerate(corpus.SECRET_NAMES):
        if index % 20 == 0:
            made.append(Holder())
            made[-1].visible = corpus.CONTROL  # type: ignore[attr-defined]
        setattr(made[-1], name, SECRET_VALUES[f"name field:{name}"])
    return made


def framework_objects() -> Dict[str, Any]:
    """Real request objects of each framework, their lazy parts (cookies, headers) read."""
    v = SECRET_HEADERS
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/cart",
        "query_string": b"",
        "headers": [
            (b"host", b"shop"),
            (b"cookie", b"session=" + v["starlette cookie"].encode()),
            (b"authorization", b"Bearer " + v["starlette authorization"].encode()),
            (b"x-api-key", v["starlette x-api-key"].encode()),
            (b"x-tenant", v["asgi x-tenant"].encode()),
        ],
    }
    starlette_request = StarletteRequest(scope)
    starlette_request.cookies  # noqa: B018 - parsed and kept on the request, as in a view
    app = flask.Flask("leaks")
    with app.test_request_context(
        "/cart",
        headers={
            "Authorization": "Bearer " + v["werkzeug authorization"],
            "X-Api-Key": v["werkzeug x-api-key"],
            "Cookie": "session=" + v["werkzeug cookie"],
        },
    ):
        flask_request = flask.request._get_current_object()  # type: ignore[attr-defined]
        flask_request.cookies  # noqa: B018
    django_request = HttpRequest()
    django_request.META = {
        "HTTP_COOKIE": "sessionid=" + v["django cookie"],
        "HTTP_AUTHORIZATION": "Token " + v["django authorization"],
        "HTTP_X_CUSTOM": v["django x-custom"],
        "PATH_INFO": "/cart",
    }
    django_request.COOKIES = {"sessionid": v["django COOKIES"]}
    django_request.headers  # noqa: B018
    prepared = requests.Request(
        "GET",
        "http://127.0.0.1:9/x",
        cookies={"sid": v["requests cookie"]},
        headers={
            "Authorization": "Bearer " + v["requests authorization"],
            "X-Api-Key": v["requests x-api-key"],
        },
    ).prepare()
    httpx_request = httpx.Request(
        "GET",
        "http://127.0.0.1:9/x",
        headers={
            "Authorization": "Bearer " + v["httpx authorization"],
            "Cookie": "sid=" + v["httpx cookie"],
        },
    )
    httpx_jar = httpx.Cookies({"sid": v["httpx cookie"]})
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    jar["theme"] = v["stdlib cookie"]
    pairs = [("Content-Type", "application/json"), ("X-Session-Token", v["header pairs"])]
    return {
        "asgi_scope": scope,
        "starlette_request": starlette_request,
        "starlette_headers": Headers(scope=scope),
        "flask_request": flask_request,
        "django_request": django_request,
        "prepared": prepared,
        "httpx_request": httpx_request,
        "httpx_jar": httpx_jar,
        "jar": jar,
        "pairs": pairs,
    }


def by_name() -> Dict[str, str]:
    return {name: SECRET_VALUES[f"name dict:{name}"] for name in corpus.SECRET_NAMES}


def by_bytes() -> Dict[bytes, bytes]:
    return {
        name.encode(): SECRET_VALUES[f"name bytes:{name}"].encode() for name in corpus.SECRET_NAMES
    }


def site(objects: Dict[str, Any]) -> None:
    """The probed function: every secret as a local, in containers and in objects."""
    visible = corpus.CONTROL
    notes = list(FORMATS)
    memo = {f"note{i}": text for i, text in enumerate(FORMATS)}
    named, named_bytes, fields = by_name(), by_bytes(), holders()
    password = SECRET_VALUES["name local:password"]
    passwd = SECRET_VALUES["name local:passwd"]
    db_password = SECRET_VALUES["name local:db_password"]
    API_KEY = SECRET_VALUES["name local:API_KEY"]
    apiKey = SECRET_VALUES["name local:apiKey"]
    secret = SECRET_VALUES["name local:secret"]
    client_secret = SECRET_VALUES["name local:client_secret"]
    access_token = SECRET_VALUES["name local:access_token"]
    refresh_token = SECRET_VALUES["name local:refresh_token"]
    auth_token = SECRET_VALUES["name local:auth_token"]
    session_id = SECRET_VALUES["name local:session_id"]
    csrftoken = SECRET_VALUES["name local:csrftoken"]
    jwt = SECRET_VALUES["name local:jwt"]
    private_key = SECRET_VALUES["name local:private_key"]
    stripe_key = SECRET_VALUES["name local:stripe_key"]
    hmac_key = SECRET_VALUES["name local:hmac_key"]
    master_key = SECRET_VALUES["name local:master_key"]
    signing_key = SECRET_VALUES["name local:signing_key"]
    encryption_key = SECRET_VALUES["name local:encryption_key"]
    credentials = SECRET_VALUES["name local:credentials"]
    card_number = SECRET_VALUES["name local:card_number"]
    cvv = SECRET_VALUES["name local:cvv"]
    ssn = SECRET_VALUES["name local:ssn"]
    pin = SECRET_VALUES["name local:pin"]
    otp = SECRET_VALUES["name local:otp"]
    iban = SECRET_VALUES["name local:iban"]
    aws_secret_access_key = SECRET_VALUES["name local:aws_secret_access_key"]
    Authorization = SECRET_VALUES["name local:Authorization"]
    cookie = SECRET_VALUES["name local:cookie"]
    passphrase = SECRET_VALUES["name local:passphrase"]
    license_key = SECRET_VALUES["name local:license_key"]
    ssh_key = SECRET_VALUES["name local:ssh_key"]
    sentry_dsn = SECRET_VALUES["name local:sentry_dsn"]
    webhookSecret = SECRET_VALUES["name local:webhookSecret"]
    note_0 = FORMATS[0]
    note_1 = FORMATS[1]
    note_2 = FORMATS[2]
    note_3 = FORMATS[3]
    note_4 = FORMATS[4]
    note_5 = FORMATS[5]
    note_6 = FORMATS[6]
    note_7 = FORMATS[7]
    note_8 = FORMATS[8]
    note_9 = FORMATS[9]
    note_10 = FORMATS[10]
    note_11 = FORMATS[11]
    note_12 = FORMATS[12]
    note_13 = FORMATS[13]
    note_14 = FORMATS[14]
    note_15 = FORMATS[15]
    note_16 = FORMATS[16]
    note_17 = FORMATS[17]
    note_18 = FORMATS[18]
    note_19 = FORMATS[19]
    note_20 = FORMATS[20]
    note_21 = FORMATS[21]
    note_22 = FORMATS[22]
    note_23 = FORMATS[23]
    note_24 = FORMATS[24]
    note_25 = FORMATS[25]
    note_26 = FORMATS[26]
    note_27 = FORMATS[27]
    note_28 = FORMATS[28]
    asgi_scope, starlette_request = objects["asgi_scope"], objects["starlette_request"]
    starlette_headers, flask_request = objects["starlette_headers"], objects["flask_request"]
    django_request, prepared = objects["django_request"], objects["prepared"]
    httpx_request, httpx_jar = objects["httpx_request"], objects["httpx_jar"]
    jar, pairs = objects["jar"], objects["pairs"]
    environment = os.environ
    done = True  # @probe-site


def explode(objects: Dict[str, Any]) -> None:
    """Exceptions whose messages, args and frames' locals hold the secrets, logged by the
    application (exception capture sees them), in chunks of distinct exception types so
    each has its own fingerprint and snapshot."""
    logger = logging.getLogger("shop")
    chunk_size = 6
    for start in range(0, len(FORMATS), chunk_size):
        chunk = FORMATS[start : start + chunk_size]
        error = type(f"LeakError{start}", (Exception,), {})
        try:
            fail(error, chunk, objects)
        except Exception:
            logger.exception("payment failed")


def fail(error: type, chunk: List[str], objects: Dict[str, Any]) -> None:
    named, named_bytes = by_name(), by_bytes()
    environment = os.environ
    visible = corpus.CONTROL
    raise error("charge failed: " + " | ".join(chunk), *chunk)


def main() -> None:
    service, server, key, log_file = sys.argv[1:5]
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger("shop").addHandler(logging.NullHandler())  # the application's own
    audit = logging.getLogger("shop.audit")  # where the logpoint writes its lines
    audit.addHandler(handler)
    audit.setLevel(logging.DEBUG)
    audit.propagate = False
    agent = peephole.start(
        service=service,
        server=server,
        key=key,
        wait=15,
        cpu_budget=1.0,
        tags={
            "api_token": corpus.TAG_SECRET,
            "dsn": f"postgres://shop:{corpus.TAG_DSN_PASSWORD}@db/shop",
            "team": "payments",
        },
    )
    objects = framework_objects()
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "hit":
            site(objects)
            explode(objects)
            agent.flush()
        elif command == "quit":
            break
        print("done", flush=True)
    peephole.stop()


if __name__ == "__main__":
    main()
