"""The REST contract: the OpenAPI document describes every response, real responses carry
exactly the fields it lists, and the client's models read exactly those fields.

Three sources must agree, and each test compares two of them:

- ``test_client_models_match_the_openapi_document``: each client model's ``field_names``
  equal the properties of the response schema it reads (``peephole.server.api.responses``),
  every one of which is required (always sent); every response schema has a client model.
- ``test_every_route_answers_what_its_schema_and_the_client_say``: a real server (uvicorn on
  loopback) and a real agent (in this process) make every route answer with something in it
  (probes of both kinds with statuses, an event of each type, an exception with a chain, a cut
  snapshot, tokens, agent keys, audit, policy, source); every JSON object in those answers
  has exactly the properties of its schema, and every client model built from them read every
  field it was sent and was sent every field it reads.

A field the server adds or renames, or one the client waits for in vain, fails here instead
of showing as ``0`` or ``""`` in a terminal.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

import peephole
from peephole import messages
from peephole.client import Client, api
from peephole.client.models import (
    AgentKey,
    AuditEntry,
    Event,
    ExceptionGroup,
    ExceptionGroupDetail,
    Files,
    Health,
    Instance,
    Limits,
    Model,
    NewAgentKey,
    NewProbe,
    NewToken,
    Page,
    Policy,
    Probe,
    ProbeInstanceStatus,
    Service,
    Source,
    Target,
    Token,
    User,
)
from peephole.server.api import responses
from peephole.server.app import create_app
from server.conftest import ADMIN_TOKEN, AGENT_KEY, LiveServer, make_settings

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

T = TypeVar("T")
SERVICE = "contract-shop"
FILE = "contract_target/shop.py"
TARGET = """\
import logging


def total(items, discount):
    subtotal = sum(items)
    result = subtotal - discount
    return result


def fail(order):
    try:
        try:
            {}[order]
        except KeyError as exc:
            raise ValueError("no such order") from exc
    except ValueError:
        logging.getLogger("contract").exception("order failed")
"""
TOTAL_LINE = 6  # ``result = subtotal - discount``

# The schema each client model reads; an event's schema depends on its type.
SCHEMAS: dict[type[Model], str] = {
    Health: "Health",
    User: "Me",
    Service: "Service",
    Instance: "Instance",
    Target: "Target",
    Limits: "Limits",
    ProbeInstanceStatus: "ProbeInstanceStatus",
    Probe: "Probe",
    ExceptionGroup: "ExceptionGroup",
    ExceptionGroupDetail: "ExceptionGroupDetail",
    Source: "Source",
    Files: "Files",
    Policy: "Policy",
    AuditEntry: "AuditEntry",
    Token: "Token",
    NewToken: "NewToken",
    AgentKey: "AgentKey",
    NewAgentKey: "NewAgentKey",
}
EVENT_SCHEMAS = {"snapshot": "SnapshotEvent", "log": "LogEvent", "exception": "ExceptionEvent"}
PAGE_SCHEMA = "EventPage"  # read by ``client.api`` into a ``Page`` of events


def schema_of(model: Model) -> str:
    if isinstance(model, Event):
        return EVENT_SCHEMAS[model.type]
    return SCHEMAS[type(model)]


# --- the OpenAPI document --------------------------------------------------------------------


class Document:
    """The parts of ``/openapi.json`` this test reads."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = data["components"]["schemas"]
        self.operations: dict[tuple[str, str], Any] = {}  # (METHOD, path template) -> success
        for path, methods in data["paths"].items():
            for method, operation in methods.items():
                answers = operation["responses"]
                ok = next(code for code in answers if code.startswith("2"))
                content = answers[ok].get("content", {}).get("application/json")
                self.operations[(method.upper(), path)] = content and content["schema"]

    def properties(self, name: str) -> set[str]:
        return set(self.schemas[name]["properties"])

    def required(self, name: str) -> set[str]:
        return set(self.schemas[name].get("required", ()))

    def response_schemas(self) -> set[str]:
        """The component schemas some success response refers to, nested ones included."""
        found: set[str] = set()
        pending = [s for s in self.operations.values() if s]
        while pending:
            schema = pending.pop()
            for name in re.findall(r"#/components/schemas/(\w+)", repr(schema)):
                if name not in found:
                    found.add(name)
                    pending.append(self.schemas[name])
        return found

    def operation_of(self, method: str, path: str) -> tuple[str, str] | None:
        for key in self.operations:
            pattern = re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(key[1]))
            if key[0] == method and re.fullmatch(pattern, path):
                return key
        return None

    def mismatches(self, value: Any, schema: Any, where: str) -> Iterator[str]:
        """Objects in ``value`` whose keys are not exactly their schema's properties."""
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            yield from self._object(value, name, where)
        elif "discriminator" in schema:
            ref = schema["discriminator"]["mapping"][value["type"]]
            yield from self._object(value, ref.rsplit("/", 1)[1], where)
        elif "anyOf" in schema:
            options = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if value is not None and len(options) == 1:
                yield from self.mismatches(value, options[0], where)
        elif schema.get("type") == "array":
            for index, item in enumerate(value):
                yield from self.mismatches(item, schema["items"], f"{where}[{index}]")

    def _object(self, value: Any, name: str, where: str) -> Iterator[str]:
        expected = self.properties(name)
        if set(value) != expected:
            extra, missing = sorted(set(value) - expected), sorted(expected - set(value))
            yield f"{where} ({name}): not in the schema {extra}, missing {missing}"
        for key, schema in self.schemas[name]["properties"].items():
            if key in value:
                yield from self.mismatches(value[key], schema, f"{where}.{key}")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Document:
    tmp = tmp_path_factory.mktemp("openapi")
    app = create_app(make_settings(f"sqlite:///{tmp / 'p.db'}", tmp))
    return Document(app.openapi())


def test_client_models_match_the_openapi_document(document: Document) -> None:
    problems = []
    pairs: list[tuple[str, set[str]]] = [
        (name, set(model.field_names({}))) for model, name in SCHEMAS.items()
    ]
    pairs += [(name, set(Event.field_names({"type": t}))) for t, name in EVENT_SCHEMAS.items()]
    pairs.append((PAGE_SCHEMA, set(Page.FIELDS)))
    for name, reads in pairs:
        sent = document.properties(name)
        if sent - reads:
            problems.append(f"{name}: the client does not read {sorted(sent - reads)}")
        if reads - sent:
            problems.append(f"{name}: the schema has no {sorted(reads - sent)}")
        if document.required(name) != sent:
            problems.append(f"{name}: not always sent: {sorted(sent - document.required(name))}")
    # a refusal: ``client.errors`` reads its ``detail`` (a 422's is FastAPI's list of fields)
    assert document.properties("Problem") == document.required("Problem") == {"detail"}
    modelled = {name for name, _ in pairs}
    unmodelled = document.response_schemas() - modelled
    assert not unmodelled, f"response schemas no client model reads: {sorted(unmodelled)}"
    assert not problems, "\n".join(problems)


def test_rest_events_carry_every_field_of_the_wire_events(document: Document) -> None:
    """What an agent sends (``peephole.messages``) is what the REST API answers, plus what the
    server adds: a field added to a wire event and not to its response model would be
    dropped from every answer without a word."""
    added_by_server = {"trace_link"}
    wire: dict[str, Any] = {
        "snapshot": messages.SnapshotEvent,
        "log": messages.LogEvent,
        "exception": messages.ExceptionEvent,
    }
    for kind, definition in wire.items():
        sent = set(definition.__required_keys__ | definition.__optional_keys__)
        answered = document.properties(EVENT_SCHEMAS[kind])
        assert answered == sent | added_by_server, (kind, answered ^ (sent | added_by_server))


def test_an_event_with_a_field_of_the_wrong_type_is_still_answered() -> None:
    """One bad stored event (kept from before the gateway checked fields) must not make a
    whole listing fail: the bad field is sent as its default."""
    stored = {"id": "e1", "type": "log", "time": 1.0, "service": "s", "instance_id": "i"}
    answer = responses.event({**stored, "line": "eight", "message": "hello"})
    assert isinstance(answer, responses.LogEvent)
    assert (answer.line, answer.message) == (None, "hello")


def test_every_operation_declares_its_response(document: Document) -> None:
    """Every route but DELETE (204, no body) answers JSON described by a schema."""
    bare = [k for k, schema in document.operations.items() if not schema and k[0] != "DELETE"]
    assert not bare, f"routes without a response schema: {bare}"


# --- real responses --------------------------------------------------------------------------


def eventually(fetch: Callable[[], T], ready: Callable[[T], bool], what: str) -> T:
    """``fetch()`` once ``ready`` says so, within 15 seconds."""
    deadline = time.monotonic() + 15
    while True:
        value = fetch()
        if ready(value):
            return value
        assert time.monotonic() < deadline, f"never got {what}; last: {value!r}"
        time.sleep(0.05)


class Recorder:
    """Every JSON answer the client received: (method, path, body)."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, str, Any]] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        if response.headers.get("content-type", "").startswith("application/json"):
            request = response.request
            self.answers.append((request.method, request.url.path, response.json()))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'p.db'}",
        tmp_path,
        trace_link_template="https://traces.example/{trace_id}",
    )
    server = LiveServer(settings).start()
    try:
        with Client(server.url, ADMIN_TOKEN) as api:
            yield api
    finally:
        server.stop()


@pytest.fixture
def shop(tmp_path: Path, client: Client) -> Iterator[Any]:
    """A module to probe, run by an agent connected to the server."""
    package = tmp_path / "contract_target"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shop.py").write_text(TARGET)
    sys.path.insert(0, str(tmp_path))
    peephole.start(
        service=SERVICE,
        server=client.url,
        key=AGENT_KEY,
        wait=10,
        version="1.0",
        environment="test",
        tags={"region": "eu"},
    )
    try:
        import contract_target.shop as module

        yield module
    finally:
        peephole.stop()
        sys.path.remove(str(tmp_path))
        for name in ("contract_target.shop", "contract_target"):
            sys.modules.pop(name, None)


def exercise(client: Client, shop: Any) -> list[Model]:
    """Call every route so that it answers with something in it; the models the client
    built from the answers."""
    target = Target(service=SERVICE)
    small = {"max_frames": 1}  # the probed frame only: captures stay quick and small
    trace = client.create_probe(
        NewProbe("tracepoint", FILE, TOTAL_LINE, watches=["subtotal"], limits=small, target=target)
    )
    cut = client.create_probe(  # a snapshot too big for its budget: the event says "cut"
        NewProbe("tracepoint", FILE, TOTAL_LINE, limits={**small, "max_bytes": 1024}, target=target)
    )
    log = client.create_probe(
        NewProbe("logpoint", FILE, TOTAL_LINE, level="warning", template="total {subtotal}")
    )
    eventually(client.probes, lambda ps: all(p.state == "active" for p in ps), "probes placed")
    shop.fail(7)
    tracer = TracerProvider().get_tracer("contract")

    def hit() -> list[Event]:
        """Run the probed line (again: a hit the agent throttled under load is not captured)."""
        with tracer.start_as_current_span("checkout"):  # events carry its ids and a link
            shop.total(list(range(2000)), 1)
        return client.events(service=SERVICE).items

    events = eventually(
        hit,
        lambda es: (
            {e.probe_id for e in es} >= {trace.id, cut.id, log.id}
            and any(e.type == "exception" for e in es)
        ),
        "an event of each probe and an exception",
    )
    assert any(e.cut for e in events if e.probe_id == cut.id)
    assert any(e.chain for e in events if e.type == "exception")
    assert any(e.trace_link for e in events)
    edited = client.update_probe(log.id, template="subtotal {subtotal}")
    changed = [edited, client.disable_probe(cut.id), client.enable_probe(cut.id)]
    client.delete_probe(cut.id)
    groups = client.exceptions(SERVICE)
    policy = client.set_policy(SERVICE, {"redact_names": ["card"]})
    token = client.create_token("ci", "viewer", expires_seconds=3600)
    key = client.create_agent_key("ci-agent", services=[SERVICE])
    files = client.send(api.Call("GET", api.files(SERVICE).path, Files.from_dict))
    assert files.files and client.files(SERVICE) == files.files  # what ``files()`` returns
    found: list[Model] = [client.health(), client.me(), *client.services()]
    found += [*client.instances(SERVICE), *client.instances(include_gone=True)]
    found += [trace, log, *changed, *client.probes(), client.probe(trace.id)]
    found += [*events, *(client.event(e.id) for e in events), *groups]
    found += [client.exception(groups[0].fingerprint), client.source(SERVICE, FILE)]
    found += [policy, client.policy(SERVICE), files]
    found += [token, *client.tokens(), client.revoke_token(token.id or 0)]
    found += [key, *client.agent_keys(), client.revoke_agent_key(key.id or 0)]
    found += [*client.audit()]
    return found


def nested(model: Model) -> Iterator[Model]:
    """The model and the models inside it."""
    yield model
    for value in vars(model).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Model):
                yield from nested(item)


def test_every_route_answers_what_its_schema_and_the_client_say(
    client: Client, shop: Any, document: Document
) -> None:
    recorder = Recorder()
    client._http.event_hooks["response"].append(recorder)
    streamed: list[Model] = []  # the live stream sends events and probes in the same shapes
    stream = client.stream(service=SERVICE)
    reader = threading.Thread(target=lambda: streamed.extend(stream), daemon=True)
    reader.start()
    models = exercise(client, shop)
    eventually(
        lambda: {m.type for m in streamed if isinstance(m, Event)},
        lambda types: types == set(EVENT_SCHEMAS),
        "an event of each type on the live stream",
    )
    stream.close()
    reader.join(10)
    assert any(isinstance(m, Probe) for m in streamed)
    models += streamed

    problems: list[str] = []
    answered: set[tuple[str, str]] = set()
    for method, path, body in recorder.answers:
        operation = document.operation_of(method, path)
        assert operation is not None, f"{method} {path} is not in the OpenAPI document"
        if body:  # an empty list says nothing about its items
            answered.add(operation)
        schema = document.operations[operation]
        problems += document.mismatches(body, schema, f"{method} {path}")
    silent = {k for k, schema in document.operations.items() if schema} - answered
    assert not silent, f"routes not exercised with a non-empty answer: {sorted(silent)}"

    read: dict[str, set[str]] = defaultdict(set)
    for response in models:
        for model in nested(response):
            sent, reads = set(model.raw), model.field_names(model.raw)
            name = schema_of(model)
            read[name].add(type(model).__name__)
            if sent - reads:
                problems.append(f"{name}: the client does not read {sorted(sent - reads)}")
            if reads - sent:
                problems.append(f"{name}: the server did not send {sorted(reads - sent)}")
    assert not problems, "\n".join(sorted(set(problems)))
    every = set(SCHEMAS.values()) | set(EVENT_SCHEMAS.values())
    assert every <= set(read), f"no client model built from: {sorted(every - set(read))}"
