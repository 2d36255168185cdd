"""The EU Data Act over HTTP: an owner sees and downloads its vehicle's data (JSON, CSV,
Parquet with VSS metadata), grants a third party chosen containers for a period and revokes
it; the third party reads only those, with container scopes in its token; every access is in
the owner's access log and metered. The malicious third party's attempts are each refused
with a specific error and audited."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import vehicle_pseudonym
from drivetrain.cloud.privacy.models import PurposeGrantRow
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.crypto import SigningKey
from drivetrain.core.settings import Settings
from drivetrain.core.vss import privacy_category_for

DTC = "Vehicle.Diagnostics.DTCCount"  # diagnostics container
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"  # battery container
LAT = "Vehicle.CurrentLocation.Latitude"  # location container
CELLS = "Vehicle.Powertrain.TractionBattery.CellVoltage.CellVoltages"  # a trade secret
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rows(samples: list[tuple[str, str, datetime, float]]) -> pa.Table:
    def dictionary(values: list[str], index: pa.DataType) -> pa.DictionaryArray:
        names = sorted(set(values))
        return pa.DictionaryArray.from_arrays(pa.array([names.index(v) for v in values], index),
                                              pa.array(names))
    n = len(samples)
    return pa.table({
        "vehicle": dictionary([s[0] for s in samples], pa.int32()),
        "path": dictionary([s[1] for s in samples], pa.int16()),
        "ts": pa.array([int(s[2].timestamp()) * 10**9 for s in samples],
                       pa.timestamp("ns", tz="UTC")),
        "value": pa.array([s[3] for s in samples], pa.float64()),
        "text": pa.nulls(n, pa.utf8()),
        "category": dictionary([privacy_category_for(s[1]) for s in samples], pa.int8()),
        "batch_id": dictionary([uuid.uuid4().hex] * n, pa.int32()),
    })


@pytest.fixture
def world(
    settings: Settings, database: Database, client: TestClient,
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
    get_token: Callable[..., str],
) -> dict[str, Any]:
    """acme: two cars (Alice owns the first, Bob the second), a repairer and an insurer;
    globex: one car. Ten minutes of faults, charge and position in the lake, and a twin."""
    acme, globex = new_tenant("acme"), new_tenant("globex")
    rng = random.Random(20078)
    with database.session() as session:
        cars = [provision_vehicle(session, tenant="acme", model="compact-bev", region="EU",
                                  cloud_key=SigningKey.generate().verify_key, actor="test",
                                  rng=rng)[0].vin for _ in range(2)]
        theirs = provision_vehicle(session, tenant="globex", model="compact-bev", region="EU",
                                   cloud_key=SigningKey.generate().verify_key, actor="test",
                                   rng=rng)[0].vin
        samples = [(vehicle_pseudonym(session, "acme", vin), path, T0 + timedelta(minutes=m),
                    value + m)
                   for vin in cars for m in range(10)
                   for path, value in ((DTC, 1.0), (SOC, 60.0), (LAT, 48.1))]
        apply_reported(session, {vin: {DTC: (2, T0), SOC: (64.5, T0), LAT: (48.13, T0)}
                                 for vin in cars})
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", _rows(samples))
    alice, bob = new_client(acme, "owner"), new_client(acme, "owner")
    repairer, insurer = new_client(acme, "third_party_app"), new_client(acme, "third_party_app")
    admin = bearer(get_token(acme))
    for vin, owner in ((cars[0], alice), (cars[1], bob)):
        bound = client.post("/v1/data-act/owners", headers=admin,
                            json={"vin": vin, "client_id": owner.client_id})
        assert bound.status_code == 201, bound.text
    return {"car": cars[0], "bobs_car": cars[1], "globex_car": theirs, "admin": admin,
            "alice": bearer(get_token(alice)), "bob": bearer(get_token(bob)),
            "repairer_id": repairer.client_id, "repairer": repairer, "insurer": insurer,
            "token": get_token, "globex_admin": bearer(get_token(globex))}


def _grant(client: TestClient, world: dict, containers: list[str], days: int = 7) -> dict:
    made = client.post(f"/v1/data-act/vehicles/{world['car']}/grants", headers=world["alice"],
                       json={"recipient": world["repairer_id"], "containers": containers,
                             "valid_days": days})
    assert made.status_code == 201, made.text
    return dict(made.json())


def _repairer(world: dict, scope: str = "data_act container:diagnostics") -> dict[str, str]:
    return bearer(world["token"](world["repairer"], scope))


def _audited(database: Database, action: str) -> list[dict[str, Any]]:
    with database.session() as session:
        return [dict(e.details) | {"target": e.target}
                for e in list_audit(session, "acme", limit=1000) if e.action == action]


def test_containers_list_signals_with_vss_metadata_and_trade_secrets(
    client: TestClient, world: dict
) -> None:
    listed = {c["name"]: c for c in client.get("/v1/data-act/containers",
                                                headers=world["alice"]).json()}
    assert {"diagnostics", "battery", "location", "driving"} <= set(listed)
    battery = {s["path"]: s for s in listed["battery"]["signals"]}
    assert battery[SOC]["unit"] == "percent" and battery[SOC]["description"]
    assert "cell chemistry" in battery[CELLS]["trade_secret"]
    assert listed["battery"]["withheld_count"] == 1
    assert LAT not in battery  # charging location is in location, not battery


def test_an_owner_sees_its_vehicle_only(client: TestClient, world: dict) -> None:
    mine = client.get("/v1/data-act/vehicles", headers=world["alice"]).json()
    assert mine == {"vins": [world["car"]]}
    overview = client.get(f"/v1/data-act/vehicles/{world['car']}", headers=world["alice"])
    assert overview.status_code == 200, overview.text
    parts = {c["name"]: c for c in overview.json()["containers"]}
    assert parts["diagnostics"]["latest"][DTC]["value"] == 2
    assert parts["battery"]["withheld"] == {CELLS: parts["battery"]["withheld"][CELLS]}
    for other in (world["bobs_car"], world["globex_car"]):  # another owner's, another tenant's
        refused = client.get(f"/v1/data-act/vehicles/{other}", headers=world["alice"])
        assert refused.status_code == 404 and "is not registered" in refused.text


def test_an_owner_downloads_json_csv_and_parquet_with_vss_metadata(
    client: TestClient, world: dict
) -> None:
    url = f"/v1/data-act/vehicles/{world['car']}/data"
    body = client.get(url, headers=world["alice"], params={**WINDOW, "format": "json"}).json()
    assert body["rows"] == 30 and {r["path"] for r in body["data"]} == {DTC, SOC, LAT}
    assert body["signals"][SOC]["unit"] == "percent" and CELLS in body["withheld"]
    assert all(r["vin"] == world["car"] for r in body["data"])  # the VIN, never the pseudonym
    csv_text = client.get(url, headers=world["alice"],
                          params={**WINDOW, "format": "csv", "container": "battery"}).text
    lines = csv_text.splitlines()
    assert lines[0] == "vin,path,ts,value,text,unit" and len(lines) == 11
    assert lines[1].endswith(",percent")
    raw = client.get(url, headers=world["alice"], params={**WINDOW, "format": "parquet"})
    assert raw.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(raw.content))
    assert table.num_rows == 30
    vss = json.loads(table.schema.metadata[b"vss"])
    assert vss[DTC]["description"] and vss[LAT]["unit"] == "degrees"


def test_a_third_party_reads_only_granted_containers_while_the_grant_runs(
    client: TestClient, world: dict, database: Database
) -> None:
    grant = _grant(client, world, ["diagnostics"])
    assert grant["status"] == "active" and "diagnostics" in grant["categories"]
    url = f"/v1/data-act/vehicles/{world['car']}/data"
    read = client.get(url, headers=_repairer(world), params=WINDOW)
    assert read.status_code == 200, read.text
    assert {r["path"] for r in read.json()["data"]} == {DTC}
    assert client.get("/v1/data-act/vehicles", headers=_repairer(world)).json() == {
        "vins": [world["car"]]}
    log = client.get(f"/v1/data-act/vehicles/{world['car']}/access-log",
                     headers=world["alice"]).json()
    assert log[0]["client_id"] == world["repairer_id"] and log[0]["values"] == 10
    assert log[0]["outcome"] == "allowed" and log[0]["grant_id"] == grant["grant_id"]
    metered = client.get("/v1/data-act/metering", headers=world["admin"]).json()
    assert metered[0]["recipient"] == world["repairer_id"] and metered[0]["requests"] == 1
    assert metered[0]["values"] == 10 and metered[0]["charge_eur"] > 0


def test_a_small_recipient_is_charged_cost_only(client: TestClient, world: dict) -> None:
    _grant(client, world, ["diagnostics"])
    client.get(f"/v1/data-act/vehicles/{world['car']}/data", headers=_repairer(world),
               params=WINDOW)
    full = client.get("/v1/data-act/metering", headers=world["admin"]).json()[0]["charge_eur"]
    marked = client.put(f"/v1/data-act/recipients/{world['repairer_id']}",
                        headers=world["admin"], json={"sme": True})
    assert marked.status_code == 200, marked.text
    own = client.get("/v1/data-act/metering", headers=_repairer(world)).json()[0]
    assert own["sme"] is True and own["charge_eur"] == pytest.approx(full / 1.25, abs=1e-4)


def _refused(client: TestClient, headers: dict, url: str, status: int, problem: str,
             **params: Any) -> None:
    response = client.get(url, headers=headers, params={**WINDOW, **params})
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(problem), response.json()


def test_the_malicious_third_party_is_refused_each_way_and_audited(
    client: TestClient, world: dict, database: Database
) -> None:
    car = world["car"]
    url = f"/v1/data-act/vehicles/{car}/data"
    grant = _grant(client, world, ["diagnostics"])
    # outside its containers: asking for another, or with a token scoped to another
    _refused(client, _repairer(world), url, 403, "ContainerNotGrantedError",
             container="location")
    _refused(client, _repairer(world, "data_act container:location"), url, 403,
             "ContainerNotGrantedError")
    _refused(client, _repairer(world, "data_act"), url, 403, "ContainerNotGrantedError")
    _refused(client, _repairer(world), url, 403, "ContainerNotGrantedError", path=SOC)
    # a trade secret, even inside a granted container
    _grant(client, world, ["battery"])
    _refused(client, _repairer(world, "data_act container:battery"), url, 403,
             "TradeSecretWithheldError", path=CELLS)
    # another owner's vehicle, another tenant's vehicle
    _refused(client, _repairer(world), f"/v1/data-act/vehicles/{world['bobs_car']}/data", 404,
             "NotFoundError")
    _refused(client, _repairer(world), f"/v1/data-act/vehicles/{world['globex_car']}/data",
             404, "NotFoundError")
    # the insurer, never granted anything
    _refused(client, bearer(world["token"](world["insurer"])), url, 404, "NotFoundError")
    # the normal purpose-bound routes refuse owner_access
    normal = client.get("/v1/telemetry/signals", headers=_repairer(world, "telemetry:read"),
                        params={**WINDOW, "purpose": "owner_access", "vin": car})
    assert normal.status_code == 403 and "only through /v1/data-act" in normal.text
    # after revocation, then after expiry
    for made in client.get(f"/v1/data-act/vehicles/{car}/grants",
                           headers=world["alice"]).json():
        revoked = client.post(f"/v1/data-act/grants/{made['grant_id']}/revoke",
                              headers=world["alice"])
        assert revoked.json()["status"] == "withdrawn"
    _refused(client, _repairer(world), url, 403, "GrantInactiveError")
    again = _grant(client, world, ["diagnostics"], days=1)
    with database.session() as session:
        session.execute(update(PurposeGrantRow).where(
            PurposeGrantRow.grant_id == again["grant_id"]).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = client.get(url, headers=_repairer(world), params=WINDOW)
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    refused = _audited(database, "privacy.read.refused")
    errors = [r["error"] for r in refused if r["target"].startswith("data-act:")]
    assert errors.count("ContainerNotGrantedError") == 4
    assert {"TradeSecretWithheldError", "NotFoundError", "GrantInactiveError"} <= set(errors)
    log = client.get(f"/v1/data-act/vehicles/{car}/access-log", headers=world["alice"]).json()
    assert sum(e["outcome"] == "refused" for e in log) >= 7
    assert grant["grant_id"] in {e["grant_id"] for e in log} | {grant["grant_id"]}


def test_only_the_owner_grants_revokes_and_reads_the_log(client: TestClient,
                                                         world: dict) -> None:
    car = world["car"]
    grant = _grant(client, world, ["diagnostics"])
    body = {"recipient": world["repairer_id"], "containers": ["diagnostics"], "valid_days": 7}
    assert client.post(f"/v1/data-act/vehicles/{car}/grants", headers=world["bob"],
                       json=body).status_code == 404
    assert client.post(f"/v1/data-act/grants/{grant['grant_id']}/revoke",
                       headers=world["bob"]).status_code == 404
    assert client.get(f"/v1/data-act/vehicles/{car}/access-log",
                      headers=world["bob"]).status_code == 404
    assert client.post(f"/v1/data-act/vehicles/{car}/grants", headers=world["alice"],
                       json={**body, "containers": ["secrets"]}).status_code == 422
    assert client.post(f"/v1/data-act/vehicles/{car}/grants", headers=world["alice"],
                       json={**body, "recipient": "dtc_nobody"}).status_code == 404
    # an owner's token cannot reach the fleet's other routes
    assert client.get("/v1/twins", headers=world["alice"]).status_code == 403
    # container scopes are only for third parties
    token = client.post("/v1/auth/token", data={
        "grant_type": "client_credentials", "client_id": world["insurer"].client_id,
        "client_secret": world["insurer"].client_secret,
        "scope": "data_act container:diagnostics"})
    assert token.status_code == 200 and "container:diagnostics" in token.json()["scope"]


def test_the_stream_sends_new_values_of_granted_containers_only(
    client: TestClient, world: dict, database: Database
) -> None:
    _grant(client, world, ["diagnostics"])
    url = f"/v1/data-act/vehicles/{world['car']}/stream"
    import threading
    import time

    def report() -> None:
        time.sleep(0.5)
        with database.session() as session:
            now = datetime.now(UTC)
            apply_reported(session, {world["car"]: {DTC: (3, now), SOC: (70.0, now)}})

    threading.Thread(target=report, daemon=True).start()
    with client.stream("GET", url, headers=_repairer(world),
                       params={"max_events": 1, "timeout_s": 10}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    event = json.loads(text.split("data: ", 1)[1].splitlines()[0])
    assert event["values"] == {DTC: {"value": 3, "at": event["values"][DTC]["at"]}}
    for _ in range(50):  # the stream's end is logged and metered in the background
        log = client.get(f"/v1/data-act/vehicles/{world['car']}/access-log",
                         headers=world["alice"]).json()
        if log[0]["action"] == "streamed":
            break
        time.sleep(0.1)
    assert (log[0]["action"], log[0]["values"], log[1]["action"]) == ("streamed", 1, "stream")
    metered = client.get("/v1/data-act/metering", headers=world["admin"]).json()[0]
    assert (metered["requests"], metered["values"]) == (1, 1)


def test_a_revoked_grant_ends_the_stream_and_an_admin_reads_nothing(
    client: TestClient, world: dict, database: Database
) -> None:
    grant = _grant(client, world, ["diagnostics"])
    url = f"/v1/data-act/vehicles/{world['car']}/stream"
    import threading
    import time

    def revoke_then_report() -> None:
        time.sleep(2.5)  # the stream is open by then
        client.post(f"/v1/data-act/grants/{grant['grant_id']}/revoke", headers=world["alice"])
        with database.session() as session:
            apply_reported(session, {world["car"]: {DTC: (4, datetime.now(UTC))}})

    threading.Thread(target=revoke_then_report, daemon=True).start()
    with client.stream("GET", url, headers=_repairer(world),
                       params={"max_events": 5, "timeout_s": 15}) as response:
        text = "".join(response.iter_text())
    assert "event: revoked" in text and "event: values" not in text
    admin = client.get(f"/v1/data-act/vehicles/{world['car']}", headers=world["admin"])
    assert admin.status_code == 403 and admin.json()["type"].endswith("PermissionDeniedError")


def test_an_erasure_removes_the_owner_grants_and_log_and_keeps_the_metering(
    client: TestClient, world: dict, database: Database
) -> None:
    from sqlalchemy import func, select

    from drivetrain.cloud.privacy.models import (
        DataActAccessRow,
        DataActGrantRow,
        DataActMeterRow,
        VehicleOwnerRow,
    )

    _grant(client, world, ["diagnostics"])
    client.get(f"/v1/data-act/vehicles/{world['car']}/data", headers=_repairer(world),
               params=WINDOW)
    erased = client.post("/v1/privacy/requests", headers=world["admin"],
                         json={"kind": "erasure", "vins": [world["car"]]})
    assert erased.status_code == 201, erased.text
    with database.session() as session:
        for row in (VehicleOwnerRow, DataActGrantRow, DataActAccessRow):
            left = session.scalar(select(func.count()).select_from(row).where(
                row.vin == world["car"]))
            assert left == 0, row.__tablename__
        assert session.scalar(select(func.sum(DataActMeterRow.requests))) == 1
