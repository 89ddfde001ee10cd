"""The REST API over real HTTP: auth, validation, probes, audit, tokens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import LiveServer, client_for, tracepoint

pytestmark = pytest.mark.server


def test_health_needs_no_token(server: LiveServer) -> None:
    with client_for(server, token=None) as anonymous:
        assert anonymous.get("/health").json() == {"status": "ok", "version": "0.1.0"}


def test_openapi_document_lists_the_routes(server: LiveServer) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/api/v1/probes", "/api/v1/events", "/api/v1/exceptions"} <= set(paths)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing token: send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer nope"}, "invalid token"),
        ({"Authorization": "Basic abc"}, "Authorization header must be 'Bearer <token>'"),
    ],
)
def test_missing_or_wrong_token_is_401_with_a_reason(
    server: LiveServer, headers: dict[str, str], reason: str
) -> None:
    response = httpx.get(server.url + "/api/v1/probes", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": reason}


def test_roles_are_enforced_with_403(api: httpx.Client, server: LiveServer) -> None:
    viewer = api.post("/tokens", json={"name": "vic", "role": "viewer"}).json()["token"]
    debugger = api.post("/tokens", json={"name": "deb", "role": "debugger"}).json()["token"]
    with client_for(server, viewer) as as_viewer, client_for(server, debugger) as as_debugger:
        assert as_viewer.get("/me").json() == {
            "name": "vic",
            "role": "viewer",
            "id": 2,
            "expires_at": None,
        }
        assert as_viewer.get("/probes").status_code == 200
        refused = as_viewer.post("/probes", json=tracepoint())
        assert refused.status_code == 403
        assert refused.json() == {"detail": "role 'viewer' may not do this; needs 'debugger'"}
        assert as_debugger.post("/probes", json=tracepoint()).status_code == 201
        assert as_debugger.get("/audit").status_code == 403
        assert as_debugger.post("/tokens", json={"name": "x", "role": "admin"}).status_code == 403
    assert [t["name"] for t in api.get("/tokens").json()] == ["admin", "vic", "deb"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"line": 0}, "line"),
        ({"kind": "breakpoint"}, "kind"),
        ({"hit_limit": 1001}, "hit_limit"),
        ({"expire_seconds": 8 * 86400}, "expire_seconds"),
        ({"condition": "x >"}, "condition"),
        ({"kind": "logpoint"}, "template"),
        ({"level": "loud"}, "level"),
        ({"limits": {"max_depth": -1}}, "limits"),
    ],
)
def test_invalid_probe_is_422_naming_the_field(
    api: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = api.post("/probes", json=tracepoint(**body))
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"]), response.json()


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    for method, path in [
        ("GET", "/probes/abc"),
        ("PATCH", "/probes/abc"),
        ("DELETE", "/probes/abc"),
        ("POST", "/probes/abc/enable"),
        ("GET", "/events/abc"),
        ("GET", "/exceptions/abc"),
    ]:
        response = api.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
    assert api.get("/probes/abc").json() == {"detail": "probe 'abc' not found"}


def test_probe_defaults_and_waiting_summary(api: httpx.Client) -> None:
    created = api.post("/probes", json=tracepoint())
    assert created.status_code == 201
    probe = created.json()
    assert probe["hit_limit"] == 10
    assert probe["expires_at"] == pytest.approx(probe["created_at"] + 3600, abs=1)
    assert probe["state"] == "pending"
    assert probe["summary"] == "waiting for a matching instance"
    assert probe["created_by"] == "admin"
    assert probe["limits"]["max_depth"] == 3
    logpoint = api.post("/probes", json=tracepoint(kind="logpoint", template="x={x}")).json()
    assert logpoint["hit_limit"] is None


def test_edit_enable_disable_delete_are_audited(api: httpx.Client) -> None:
    probe = api.post("/probes", json=tracepoint()).json()
    edited = api.patch(f"/probes/{probe['id']}", json={"condition": "x > 1", "hit_limit": 5})
    assert edited.status_code == 200
    assert (edited.json()["version"], edited.json()["condition"]) == (2, "x > 1")
    assert edited.json()["hit_limit"] == 5
    disabled = api.post(f"/probes/{probe['id']}/disable").json()
    assert (disabled["state"], disabled["enabled"], disabled["version"]) == ("disabled", False, 3)
    assert api.get("/probes", params={"state": "disabled"}).json()[0]["id"] == probe["id"]
    assert api.post(f"/probes/{probe['id']}/enable").json()["state"] == "pending"
    assert api.delete(f"/probes/{probe['id']}").status_code == 204
    assert api.get(f"/probes/{probe['id']}").status_code == 404
    log = api.get("/audit").json()
    assert [e["action"] for e in log] == [
        "probe.delete",
        "probe.enable",
        "probe.disable",
        "probe.update",
        "probe.create",
    ]
    assert all(e["actor"] == "admin" and e["probe_id"] == probe["id"] for e in log)
    assert log[3]["details"] == {"condition": "x > 1", "hit_limit": 5}


def test_probes_filter_by_service(api: httpx.Client) -> None:
    api.post("/probes", json=tracepoint("shop"))
    api.post("/probes", json=tracepoint("billing"))
    assert [
        p["target"]["service"] for p in api.get("/probes", params={"service": "billing"}).json()
    ] == ["billing"]
    assert api.get("/probes", params={"state": "bogus"}).status_code == 422


def test_bad_cursor_is_422(api: httpx.Client) -> None:
    response = api.get("/events", params={"cursor": "garbage"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_agent_keys_and_metrics(api: httpx.Client, server: LiveServer) -> None:
    created = api.post("/agent-keys", json={"name": "pods"})
    assert created.status_code == 201 and created.json()["key"].startswith("phk_")
    metrics = httpx.get(server.url + "/metrics").text
    assert "peephole_agents_connected 0" in metrics
    assert "# TYPE peephole_events_stored_total counter" in metrics


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("tracepoint", {"hit_limit": None}, "hit_limit"),
        ("tracepoint", {"expire_seconds": None}, "expire_seconds"),
        ("logpoint", {"template": None}, "template"),
        ("tracepoint", {"watches": ["a b"]}, "watches"),
    ],
)
def test_invalid_edit_is_422_naming_the_field(
    api: httpx.Client, kind: str, body: dict[str, object], field: str
) -> None:
    probe = api.post("/probes", json=tracepoint(kind=kind, template="t")).json()
    response = api.patch(f"/probes/{probe['id']}", json=body)
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"], response.json()
    assert api.get(f"/probes/{probe['id']}").json()["version"] == 1


def test_a_tracepoint_always_has_a_hit_limit(api: httpx.Client) -> None:
    assert api.post("/probes", json=tracepoint(hit_limit=None)).json()["hit_limit"] == 10
