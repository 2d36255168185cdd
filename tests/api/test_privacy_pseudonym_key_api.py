"""``POST /v1/privacy/pseudonym-key/rotate``: an admin of a tenant rotates that tenant's
pseudonym key (audited, earlier keys kept); anyone else is refused and nothing changes, and
another tenant's key is never touched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.privacy import pseudonym_keys, pseudonymiser

URL = "/v1/privacy/pseudonym-key/rotate"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _versions(database: Database, tenant: str) -> list[int]:
    with database.session() as session:
        return [k.version for k in pseudonym_keys(session, tenant)]


def test_privacy_pseudonym_key_rotation_by_an_admin_is_audited_and_keeps_earlier_keys(
    client: TestClient, database: Database, new_tenant: Callable[[str], Any],
    get_token: Callable[..., str],
) -> None:
    admin = new_tenant("acme")
    globex = new_tenant("globex")
    with database.session() as session:
        pseudonymiser(session, "acme")  # version 1, as ingest creates it
        pseudonymiser(session, "globex")
    response = client.post(URL, headers=bearer(get_token(admin)))
    assert response.status_code == 200, response.text
    keys = response.json()
    assert [(k["version"], k["current"]) for k in keys] == [(2, True), (1, False)]
    assert all("key" not in k for k in keys)  # never the secret
    assert _versions(database, "acme") == [2, 1] and _versions(database, "globex") == [1]
    with database.session() as session:
        audit = list_audit(session, "acme", action="privacy.pseudonym_key.rotate")
    assert [(a.actor, a.details) for a in audit] == [
        (admin.client_id, {"version": 2, "previous": 1})]
    # globex's admin rotates globex's key only
    assert client.post(URL, headers=bearer(get_token(globex))).status_code == 200
    assert _versions(database, "acme") == [2, 1] and _versions(database, "globex") == [2, 1]


def test_privacy_pseudonym_key_rotation_by_a_non_admin_is_refused_and_changes_nothing(
    client: TestClient, database: Database, new_tenant: Callable[[str], Any],
    new_client: Callable[..., Any], get_token: Callable[..., str],
) -> None:
    admin = new_tenant("acme")
    with database.session() as session:
        pseudonymiser(session, "acme")
    for role in ("fleet_operator", "read_only", "third_party_app", "service"):
        refused = client.post(URL, headers=bearer(get_token(new_client(admin, role))))
        assert refused.status_code == 403, role
        assert "admin" in refused.json()["detail"]
    assert client.post(URL).status_code == 401
    assert _versions(database, "acme") == [1]
    with database.session() as session:
        assert list_audit(session, "acme", action="privacy.pseudonym_key.rotate") == []
