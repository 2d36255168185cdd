"""Purpose binding on ``/v1/telemetry``: every read names a purpose, is checked against the
legal basis or the consent ledger, and leaves an audit entry — and the attacks: no purpose,
a purpose the data was not consented for, a withdrawn or expired grant, a third party outside
its grant, SQL trying to see past the permit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from lake_rows import T0, make_rows

from drivetrain.api import create_app
from drivetrain.cloud.infra import (
    Database,
    Role,
    create_client,
    create_tenant,
    credentials,
    issue_token,
    list_audit,
)
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import give_consent, vehicle_pseudonym, withdraw_consent
from drivetrain.core.settings import load_settings

START = (T0 - timedelta(days=1)).isoformat()
END = (T0 + timedelta(days=2)).isoformat()
WINDOW = {"start": START, "end": END}
VIN_A, VIN_B = "WDT0000000000000A", "WDT0000000000000B"
LATITUDE = "Vehicle.CurrentLocation.Latitude"
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"


@dataclass
class Api:
    http: TestClient
    database: Database
    token: Callable[..., tuple[str, dict[str, str]]]
    pseudonyms: dict[str, str]

    def grant(self, vin: str, purpose: str, categories: list[str], *,
              recipient: str | None = None, expires_at: datetime | None = None) -> int:
        with self.database.session() as session:
            return give_consent(session, tenant="acme", vin=vin, purpose=purpose,
                                categories=categories, person="owner", source="owner-app",
                                actor="test", recipient=recipient,
                                expires_at=expires_at).grant_id

    def audit(self, action: str) -> list[dict[str, object]]:
        with self.database.session() as session:
            return [dict(e.details) | {"actor": e.actor, "target": e.target}
                    for e in list_audit(session, "acme", action=action, limit=1000)]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: Callable[[Path], str]) -> Iterator[Api]:
    monkeypatch.setattr(credentials, "SCRYPT_N", 2**10)
    settings = load_settings(data_dir=tmp_path / "data")
    database = Database(state_url(tmp_path))
    database.upgrade()
    app = create_app(settings, database)
    key = app.state.drivetrain.token_key
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        pseudonyms = {vin: vehicle_pseudonym(session, "acme", vin) for vin in (VIN_A, VIN_B)}
    rows = make_rows(3_000, seed=7, vehicles=2, batches=3)
    ids = rows.column("vehicle").chunk(0).dictionary.to_pylist()
    names = [pseudonyms[VIN_A] if v == ids[0] else pseudonyms[VIN_B]
             for v in rows.column("vehicle").to_pylist()]
    rows = rows.set_column(0, "vehicle", pa.array(names).dictionary_encode())
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", rows)

    def token(role: Role = Role.ADMIN) -> tuple[str, dict[str, str]]:
        with database.session() as session:
            made = create_client(session, tenant="acme", role=role, actor="test")
        issued = issue_token(client_id=made.client.client_id, tenant="acme", role=role,
                             scopes=made.client.scopes, key=key, now=datetime.now(UTC),
                             ttl_s=600)
        return made.client.client_id, {"Authorization": f"Bearer {issued.access_token}"}

    with TestClient(app) as http:
        yield Api(http, database, token, pseudonyms)
    database.dispose()


def _signals(api: Api, headers: dict[str, str], **params: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = api.http.get("/v1/telemetry/signals", params={**WINDOW, **params},
                            headers=headers)
    return response.status_code, response.json()


def _categories(body: dict) -> set[str]:  # type: ignore[type-arg]
    from drivetrain.core.vss.privacy import privacy_category_for

    return {privacy_category_for(row["path"]) for row in body["data"]}


def test_a_read_without_a_purpose_is_refused_and_audited(api: Api) -> None:
    client_id, headers = api.token()
    status, body = _signals(api, headers)
    assert status == 422 and body["type"].endswith("PurposeRequiredError")
    assert "must name its purpose" in body["detail"] and "maintenance" in body["detail"]
    refused = api.audit("privacy.read.refused")
    assert refused[-1]["actor"] == client_id and refused[-1]["target"] == "telemetry:signals"
    assert refused[-1]["error"] == "PurposeRequiredError"


def test_an_unknown_purpose_is_refused_naming_the_known_ones(api: Api) -> None:
    status, body = _signals(api, api.token()[1], purpose="marketing")
    assert status == 422 and "'marketing' is not known" in body["detail"]


def test_a_contract_purpose_reads_only_its_categories_of_every_vehicle(api: Api) -> None:
    status, body = _signals(api, api.token()[1], purpose="maintenance")
    assert status == 200 and body["rows"] > 0
    assert _categories(body) == {"technical", "diagnostics"}
    assert {row["vehicle"] for row in body["data"]} == set(api.pseudonyms.values())
    allowed = api.audit("privacy.read")[-1]
    assert allowed["purpose"] == "maintenance"
    assert allowed["allowed"] == ["diagnostics", "technical"]


def test_naming_a_path_outside_the_purpose_is_403(api: Api) -> None:
    status, body = _signals(api, api.token()[1], purpose="maintenance", path=LATITUDE)
    assert status == 403 and body["type"].endswith("PurposeNotAllowedError")
    assert "may not read location" in body["detail"]
    assert api.audit("privacy.read.refused")[-1]["categories"] == ["location"]


def test_data_consented_for_one_purpose_is_refused_for_another(api: Api) -> None:
    api.grant(VIN_A, "insurance", ["location"])
    headers = api.token()[1]
    status, body = _signals(api, headers, purpose="insurance", path=LATITUDE)
    assert status == 200 and body["rows"] > 0
    assert {row["vehicle"] for row in body["data"]} == {api.pseudonyms[VIN_A]}
    status, body = _signals(api, headers, purpose="product_improvement", path=LATITUDE)
    assert status == 403 and "no vehicle has consent" in body["detail"]
    status, body = _signals(api, headers, purpose="insurance", path=LATITUDE, vin=VIN_B)
    assert status == 403 and VIN_B in body["detail"]


def test_a_withdrawn_grant_stops_reads_at_once(api: Api) -> None:
    grant = api.grant(VIN_A, "insurance", ["location"])
    headers = api.token()[1]
    assert _signals(api, headers, purpose="insurance", path=LATITUDE)[0] == 200
    with api.database.session() as session:
        withdraw_consent(session, tenant="acme", grant_id=grant, actor="owner-app")
    status, _ = _signals(api, headers, purpose="insurance", path=LATITUDE)
    assert status == 403


def test_an_expired_grant_reads_nothing(api: Api) -> None:
    grant = api.grant(VIN_A, "insurance", ["location"],
                      expires_at=datetime.now(UTC) + timedelta(milliseconds=300))
    assert grant > 0
    headers = api.token()[1]
    import time

    time.sleep(0.4)
    assert _signals(api, headers, purpose="insurance", path=LATITUDE)[0] == 403


def test_a_third_party_reads_only_what_it_was_granted(api: Api) -> None:
    repairer, headers = api.token(Role.THIRD_PARTY_APP)
    other, _ = api.token(Role.THIRD_PARTY_APP)
    # contract purposes cover the tenant, never who it shares with
    status, body = _signals(api, headers, purpose="maintenance")
    assert status == 403 and "third-party app" in body["detail"]
    status, body = _signals(api, headers, purpose="repair")
    assert status == 200 and body["rows"] == 0  # no grant yet: nothing
    api.grant(VIN_A, "repair", ["diagnostics"], recipient=other)  # not for this repairer
    assert _signals(api, headers, purpose="repair")[1]["rows"] == 0
    api.grant(VIN_A, "repair", ["diagnostics"], recipient=repairer)
    status, body = _signals(api, headers, purpose="repair")
    assert status == 200 and body["rows"] > 0
    assert _categories(body) == {"diagnostics"}
    assert {row["vehicle"] for row in body["data"]} == {api.pseudonyms[VIN_A]}
    status, body = _signals(api, headers, purpose="repair", path=SOH, vin=VIN_B)
    assert status == 403
    status, body = _signals(api, headers, purpose="repair", path=LATITUDE)
    assert status == 403


def test_raw_sql_sees_only_the_rows_the_purpose_covers(api: Api) -> None:
    api.grant(VIN_B, "insurance", ["driving_behaviour"])
    headers = api.token()[1]
    query = {"query": "SELECT DISTINCT vehicle, category FROM telemetry ORDER BY 1, 2"}
    response = api.http.post("/v1/telemetry/sql", params={"purpose": "insurance"}, json=query,
                             headers=headers)
    assert response.status_code == 200, response.text
    assert {(r["vehicle"], r["category"]) for r in response.json()["data"]} == {
        (api.pseudonyms[VIN_B], "driving_behaviour")}
    response = api.http.post("/v1/telemetry/sql", json=query, headers=headers)
    assert response.status_code == 422
    assert api.audit("privacy.read.refused")[-1]["target"] == "telemetry:sql"


def test_a_fleet_aggregate_covers_only_consenting_vehicles(api: Api) -> None:
    api.grant(VIN_A, "insurance", ["location"])
    response = api.http.get("/v1/telemetry/aggregate", headers=api.token()[1],
                            params={**WINDOW, "path": LATITUDE, "purpose": "insurance"})
    assert response.status_code == 200, response.text
    assert [row["vehicles"] for row in response.json()["data"]] == [1]


def test_a_malicious_third_party_is_refused_at_every_turn_and_each_refusal_is_audited(
    api: Api,
) -> None:
    repairer, headers = api.token(Role.THIRD_PARTY_APP)
    grant = api.grant(VIN_A, "repair", ["diagnostics"], recipient=repairer)
    attempts = [
        ("no purpose", {}, 422),
        ("a contract purpose", {"purpose": "maintenance"}, 403),
        ("a purpose it holds no grant for", {"purpose": "insurance", "vin": VIN_A}, 403),
        ("outside its categories", {"purpose": "repair", "path": LATITUDE}, 403),
        ("another vehicle", {"purpose": "repair", "vin": VIN_B, "path": SOH}, 403),
        ("another tenant", {"purpose": "repair", "tenant": "globex"}, 403),
    ]
    for what, params, status in attempts:
        got, body = _signals(api, headers, **params)
        assert got == status, (what, body)
    with api.database.session() as session:
        withdraw_consent(session, tenant="acme", grant_id=grant, actor="owner-app")
    got, _ = _signals(api, headers, purpose="repair", vin=VIN_A, path=SOH)
    assert got == 403  # a revoked grant
    refused = [e for e in api.audit("privacy.read.refused") if e["actor"] == repairer]
    assert len(refused) == len(attempts) + 1  # each attempt and the revoked grant
    assert {e["error"] for e in refused} == {"PurposeRequiredError", "PurposeNotAllowedError",
                                            "PermissionDeniedError"}
