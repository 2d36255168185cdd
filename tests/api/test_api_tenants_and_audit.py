"""Tenant and client management through the API, each change audited (both engines)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_operator_creates_a_tenant_whose_admin_then_manages_its_clients(
    client: TestClient, new_tenant: Callable[[str], Any], get_token: Callable[..., str]
) -> None:
    admin = new_tenant("acme")
    token = get_token(admin)
    whoami = client.get("/v1/auth/whoami", headers=_bearer(token)).json()
    assert (whoami["tenant"], whoami["role"]) == ("acme", "admin")
    created = client.post(
        "/v1/tenants/acme/clients",
        json={"role": "service", "name": "ingest worker", "scopes": ["telemetry:write"]},
        headers=_bearer(token),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["role"], body["scopes"], body["name"]) == ("service", "telemetry:write", "ingest worker")
    listed = client.get("/v1/tenants/acme/clients", headers=_bearer(token)).json()
    assert {c["client_id"] for c in listed} == {admin.client_id, body["client_id"]}
    assert all("client_secret" not in c for c in listed)


def test_every_state_change_writes_one_audit_entry_with_the_request_id(
    client: TestClient, new_tenant: Callable[[str], Any], get_token: Callable[..., str]
) -> None:
    admin = new_tenant("acme")
    token = get_token(admin)
    made = client.post(
        "/v1/tenants/acme/clients",
        json={"role": "read_only"},
        headers={**_bearer(token), "X-Request-ID": "req-create-1"},
    )
    assert made.headers["x-request-id"] == "req-create-1"
    client_id = made.json()["client_id"]
    client.post(
        f"/v1/tenants/acme/clients/{client_id}/disable",
        headers={**_bearer(token), "X-Request-ID": "req-disable-1"},
    )
    page = client.get("/v1/audit", headers=_bearer(token)).json()
    actions = [(e["action"], e["target"], e["request_id"]) for e in page["entries"]]
    assert actions[-2:] == [
        ("client.create", f"client:{client_id}", "req-create-1"),
        ("client.disable", f"client:{client_id}", "req-disable-1"),
    ]
    assert [e["action"] for e in page["entries"][:2]] == ["tenant.create", "client.create"]
    assert all(e["actor"] for e in page["entries"])
    assert all(e["tenant"] == "acme" for e in page["entries"])


def test_audit_log_shows_only_the_callers_tenant_and_pages(
    client: TestClient, new_tenant: Callable[[str], Any], get_token: Callable[..., str],
    operator: Any,
) -> None:
    new_tenant("acme")
    operator_page = client.get("/v1/audit?limit=1", headers=_bearer(get_token(operator))).json()
    assert [e["tenant"] for e in operator_page["entries"]] == ["default"]
    assert operator_page["next_after_seq"] == 1
    rest = client.get("/v1/audit?after_seq=1", headers=_bearer(get_token(operator))).json()
    assert [e["seq"] for e in rest["entries"]] == [2] and rest["next_after_seq"] is None
    verified = client.get("/v1/audit/verify", headers=_bearer(get_token(operator))).json()
    assert verified == {"ok": True, "entries_checked": 2, "first_broken_seq": None, "reason": None,
                        "unkeyed_entries": 0}


def test_duplicate_tenant_is_409_and_bad_input_is_422_naming_the_field(
    client: TestClient, new_tenant: Callable[[str], Any], operator: Any,
    get_token: Callable[..., str],
) -> None:
    new_tenant("acme")
    token = get_token(operator)
    duplicate = client.post("/v1/tenants", json={"tenant_id": "acme"}, headers=_bearer(token))
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "tenant 'acme' already exists"
    bad_role = client.post(
        "/v1/tenants/default/clients", json={"role": "superuser"}, headers=_bearer(token)
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["errors"][0]["field"] == "body.role"
    assert "'superuser'" in bad_role.json()["detail"]


def test_unknown_client_is_404_within_the_callers_tenant(
    client: TestClient, operator: Any, get_token: Callable[..., str]
) -> None:
    response = client.post(
        "/v1/tenants/default/clients/dtc_nobody/disable", headers=_bearer(get_token(operator))
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "client 'dtc_nobody' does not exist in tenant 'default'"
