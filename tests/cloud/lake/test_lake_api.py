"""``/v1/telemetry`` over HTTP: JSON and Arrow results, scopes, and tenant isolation.

Reads name a purpose; ``maintenance`` (contract) covers technical and diagnostics data of
every vehicle (purpose binding itself is tested in tests/cloud/privacy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from lake_rows import T0, make_rows, vehicle_id

from drivetrain.api import create_app
from drivetrain.cloud.infra import (
    Database,
    Role,
    Scope,
    create_client,
    create_tenant,
    credentials,
    issue_token,
)
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.api import ARROW_STREAM
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.cloud.privacy.ledger import give_consent
from drivetrain.core.settings import Settings, load_settings
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

START = (T0 - timedelta(days=1)).isoformat()
END = (T0 + timedelta(days=2)).isoformat()
VIN = "WDT00000000000017"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
MAINTENANCE = {"purpose": "maintenance"}


@dataclass
class Api:
    """An app with tenants acme and globex, their lake data, and a token maker."""

    http: TestClient
    settings: Settings
    database: Database
    token: Callable[..., dict[str, str]]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: Callable[[Path], str]) -> Iterator[Api]:
    monkeypatch.setattr(credentials, "SCRYPT_N", 2**10)
    settings = load_settings(data_dir=tmp_path / "data")
    database = Database(state_url(tmp_path))
    database.upgrade()
    app = create_app(settings, database)
    key = app.state.drivetrain.token_key
    with database.session() as session:
        for tenant in ("acme", "globex"):
            create_tenant(session, tenant, actor="test")
        pseudonym = vehicle_pseudonym(session, "acme", VIN)
    acme = make_rows(2_000, seed=1)
    vin_rows = make_rows(50, seed=4, vehicles=1, batches=1)
    vin_rows = vin_rows.set_column(0, "vehicle", pa.array([pseudonym] * 50))
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", acme)
        lake.append("US", "acme", make_rows(500, seed=2))
        lake.append("EU", "acme", vin_rows)
        lake.append("EU", "globex", make_rows(700, seed=3))

    def token(tenant: str = "acme", role: Role = Role.ADMIN,
              scopes: frozenset[Scope] | None = None) -> dict[str, str]:
        with database.session() as session:
            made = create_client(session, tenant=tenant, role=role, scopes=scopes, actor="test")
        issued = issue_token(client_id=made.client.client_id, tenant=tenant, role=role,
                             scopes=scopes if scopes is not None else made.client.scopes,
                             key=key, now=datetime.now(UTC), ttl_s=600)
        return {"Authorization": f"Bearer {issued.access_token}"}

    with TestClient(app) as http:
        yield Api(http, settings, database, token)
    database.dispose()


def test_signals_come_back_as_json_records_with_nanosecond_timestamps(api: Api) -> None:
    response = api.http.get(
        "/v1/telemetry/signals",
        params={"start": START, "end": END, "vehicle": [vehicle_id(1)], "path": SOC,
                **MAINTENANCE},
        headers=api.token(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == "acme"
    assert [c["name"] for c in body["columns"]] == ["vehicle", "path", "ts", "value", "text"]
    assert body["rows"] == len(body["data"]) > 0
    first = body["data"][0]
    assert first["vehicle"] == vehicle_id(1) and first["path"] == SOC
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2024-05-01T00:00:00.123456789Z")


def test_signals_as_an_arrow_stream_equal_the_library_result(api: Api) -> None:
    params = {"start": START, "end": END, "path": [SOC, SOH], "every": "10m", "agg": "max",
              **MAINTENANCE}
    response = api.http.get("/v1/telemetry/signals", params=params,
                            headers={**api.token(), "Accept": ARROW_STREAM})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ARROW_STREAM
    table = pa.ipc.open_stream(response.content).read_all()
    with Lake.open(api.settings) as lake:
        expected = lake.signals("acme", None, params["path"], T0 - timedelta(days=1),
                                T0 + timedelta(days=2), "10m", "max")
    assert table.equals(expected)


def test_a_vin_is_pseudonymised_for_the_callers_tenant(api: Api) -> None:
    with api.database.session() as session:
        give_consent(session, tenant="acme", vin=VIN, purpose="product_improvement",
                     categories=PRIVACY_CATEGORIES, person="owner", source="driver-app",
                     actor="test")
    response = api.http.get("/v1/telemetry/signals",
                            params={"start": START, "end": END, "vin": VIN,
                                    "purpose": "product_improvement"}, headers=api.token())
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 50
    assert VIN not in response.text


def test_fleet_aggregate_per_region(api: Api) -> None:
    response = api.http.get(
        "/v1/telemetry/aggregate",
        params={"path": SOC, "start": START, "end": END, "group_by": "region",
                "agg": "mean", **MAINTENANCE},
        headers=api.token(),
    )
    assert response.status_code == 200, response.text
    assert [row["region"] for row in response.json()["data"]] == ["EU", "US"]


def test_counts_per_region_and_category(api: Api) -> None:
    response = api.http.get("/v1/telemetry/counts", headers=api.token())
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert sum(r["rows"] for r in rows) == 2_550
    assert {r["region"] for r in rows} == {"EU", "US"}


def test_sql_runs_for_a_client_with_the_sql_scope(api: Api) -> None:
    query = "SELECT region, count(*) AS n FROM telemetry GROUP BY region ORDER BY 1"
    response = api.http.post("/v1/telemetry/sql", json={"query": query}, params=MAINTENANCE,
                             headers=api.token())
    assert response.status_code == 200, response.text
    with Lake.open(api.settings) as lake:
        expected = lake.sql("acme", query.replace(
            "GROUP BY", "WHERE category IN ('technical', 'diagnostics') GROUP BY"))
    assert response.json()["data"] == expected.to_pylist()
    assert [row["region"] for row in expected.to_pylist()] == ["EU", "US"]


# --- refused ------------------------------------------------------------------------------------
def test_no_token_is_401(api: Api) -> None:
    response = api.http.get("/v1/telemetry/counts")
    assert response.status_code == 401


def test_a_token_without_the_telemetry_read_scope_is_403(api: Api) -> None:
    headers = api.token(role=Role.ADMIN, scopes=frozenset({Scope.FLEET_READ}))
    response = api.http.get("/v1/telemetry/counts", headers=headers)
    assert response.status_code == 403 and "telemetry:read" in response.json()["detail"]


def test_sql_without_the_sql_scope_is_403(api: Api) -> None:
    response = api.http.post("/v1/telemetry/sql", json={"query": "SELECT 1"},
                             headers=api.token(role=Role.READ_ONLY))
    assert response.status_code == 403 and "telemetry:sql" in response.json()["detail"]


@pytest.mark.parametrize(("method", "url", "extra"), [
    ("GET", "/v1/telemetry/signals", {"start": START, "end": END, **MAINTENANCE}),
    ("GET", "/v1/telemetry/aggregate", {"start": START, "end": END, "path": SOC, **MAINTENANCE}),
    ("GET", "/v1/telemetry/counts", {}),
    ("POST", "/v1/telemetry/sql", MAINTENANCE),
])
def test_asking_for_another_tenants_telemetry_is_403(
    api: Api, method: str, url: str, extra: dict[str, str]
) -> None:
    response = api.http.request(
        method, url, params={**extra, "tenant": "acme"},
        json={"query": "SELECT * FROM telemetry"} if method == "POST" else None,
        headers=api.token("globex"),
    )
    assert response.status_code == 403, response.text
    assert "may not act on tenant 'acme'" in response.json()["detail"]


def test_each_tenant_sees_only_its_own_rows(api: Api) -> None:
    globex = api.http.get("/v1/telemetry/signals",
                          params={"start": START, "end": END, **MAINTENANCE},
                          headers=api.token("globex"))
    with Lake.open(api.settings) as lake:
        expected = lake.signals("globex", None, [SOC, SOH], T0 - timedelta(days=1),
                                T0 + timedelta(days=2))
    assert globex.status_code == 200 and globex.json()["rows"] == expected.num_rows > 0
    stolen = api.http.post("/v1/telemetry/sql", headers=api.token("globex"), params=MAINTENANCE,
                           json={
        "query": "SELECT count(*) AS n FROM telemetry WHERE tenant = 'acme'"})
    assert stolen.status_code == 422  # the view has no tenant column to steer


def test_sql_reading_another_tenants_file_is_refused(api: Api) -> None:
    other = next((api.settings.data_dir / "lake" / "EU").glob("region=EU/tenant=acme/*/*.parquet"))
    response = api.http.post("/v1/telemetry/sql", headers=api.token("globex"), params=MAINTENANCE,
                             json={"query": f"SELECT * FROM read_parquet('{other}')"})
    assert response.status_code == 422
    assert "read_parquet() is not allowed" in response.json()["detail"]


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "2024-05-01T00:00:00", "end": END}, "has no timezone"),
    ({"start": START, "end": END, "every": "sometimes"}, "every='sometimes'"),
    ({"start": START, "end": END, "agg": "median"}, "agg"),
    ({"start": "yesterday", "end": END}, "start"),
])
def test_bad_parameters_are_422_naming_them(api: Api, params: dict[str, str], field: str) -> None:
    response = api.http.get("/v1/telemetry/signals", params={**params, **MAINTENANCE},
                            headers=api.token())
    assert response.status_code == 422, response.text
    assert field in response.text


def test_a_json_result_over_the_limit_is_refused_with_advice(api: Api) -> None:
    response = api.http.get("/v1/telemetry/signals",
                            params={"start": START, "end": END, "limit": 10, **MAINTENANCE},
                            headers=api.token())
    assert response.status_code == 422 and "max_rows=10" in response.json()["detail"]


def test_the_routes_are_in_the_openapi_document(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    assert {"/v1/telemetry/signals", "/v1/telemetry/aggregate", "/v1/telemetry/counts",
            "/v1/telemetry/sql"} <= set(paths)
