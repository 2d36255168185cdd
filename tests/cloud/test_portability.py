"""Export and import: a tenant's state and telemetry leave as open files (JSON with JSON
Schemas, Parquet, a manifest with SHA-256s) and come back into another installation
unchanged — export → import → export gives the same content, a second import changes
nothing, a bundle that lies or collides is refused and changes nothing."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.fleet import list_vehicles, provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability import (
    EXCLUDED,
    Subject,
    export_data,
    import_bundle,
    verify,
)
from drivetrain.cloud.portability.tables import from_json_row, portable_tables
from drivetrain.cloud.privacy import give_consent, set_consent, vehicle_pseudonym
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError, ConflictError, VerificationError
from drivetrain.core.vss.privacy import privacy_category_for

StateUrl = Callable[[Path], str]

CLOUD = SigningKey.from_seed(b"portability-test-cloud-key-00000")
PATHS = ("Vehicle.Speed", "Vehicle.CurrentLocation.Latitude",
         "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current")
T0_NS = int(datetime(2026, 11, 30, 23, 50, tzinfo=UTC).timestamp()) * 10**9


def _installation(root: Path, state_url: StateUrl) -> tuple[Database, Lake]:
    database = Database(state_url(root))
    database.upgrade()
    return database, Lake(root / "data")


def _telemetry(pseudonym: str, seed: int, n: int = 400) -> pa.Table:
    """Rows of one vehicle over midnight (so a batch spans two dates), 4 batches."""
    rng = random.Random(seed)
    paths = [PATHS[i % 3] for i in range(n)]
    return pa.table({
        "vehicle": pa.array([pseudonym] * n).dictionary_encode(),
        "path": pa.array(paths).dictionary_encode(),
        "ts": pa.array([T0_NS + i * 3 * 10**9 for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "value": pa.array([round(rng.uniform(0, 100), 2) for _ in range(n)]),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.array([privacy_category_for(p) for p in paths]).dictionary_encode(),
        "batch_id": pa.array([f"{seed:08x}{i * 4 // n:024x}" for i in range(n)]).dictionary_encode(),
    })


@pytest.fixture
def source(tmp_path: Path, state_url: StateUrl) -> tuple[Database, Lake, list[str]]:
    """acme with three vehicles: registry, twins, consent, grants, telemetry in EU and US."""
    database, lake = _installation(tmp_path / "source", state_url)
    vins = []
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        create_tenant(session, "globex", actor="test")
        for i, region in enumerate(("EU", "EU", "US")):
            vehicle, _ = provision_vehicle(session, tenant="acme", model="compact-bev",
                                           region=region, cloud_key=CLOUD.verify_key,
                                           actor="test", rng=random.Random(i), owner=f"owner-{i % 2}")
            vins.append(vehicle.vin)
        now = datetime.now(UTC)
        apply_reported(session, {vin: {PATHS[1]: (48.1 + i, now), PATHS[2]: (70.0, now)}
                                 for i, vin in enumerate(vins)})
        set_consent(session, vin=vins[0], tenant="acme", categories=["technical", "location"],
                    source="driver-app", actor="test")
        give_consent(session, tenant="acme", vin=vins[0], purpose="insurance",
                     categories=["location"], person="driver", source="driver-app", actor="test")
        pseudonyms = [vehicle_pseudonym(session, "acme", v) for v in vins]
    lake.append("EU", "acme", pa.concat_tables([_telemetry(pseudonyms[0], 1),
                                                 _telemetry(pseudonyms[1], 2)]))
    lake.append("US", "acme", _telemetry(pseudonyms[2], 3))
    yield database, lake, vins
    lake.close()
    database.dispose()


def _content(bundle: Path) -> dict[str, Any]:
    """What must survive a round trip: the state sections byte for byte, and the telemetry
    rows (Parquet files by their hash)."""
    manifest = verify(bundle)
    return {
        "sections": {s.table: (bundle / s.path).read_bytes() for s in manifest.sections},
        "files": sorted((f.path, f.sha256) for f in manifest.files
                        if f.path.endswith(".parquet") or f.path.startswith("schemas/")),
        "telemetry": [(t.region, t.rows) for t in manifest.telemetry],
    }


def test_export_import_export_gives_identical_content(
    source: Any, tmp_path: Path, state_url: StateUrl
) -> None:
    database, lake, vins = source
    first = export_data(database, lake, Subject("acme"), tmp_path / "one", actor="test")
    assert {s.table for s in first.sections} >= {"fleet_vehicles", "twins", "twin_reported",
                                                   "privacy_consent", "privacy_purpose_grants"}
    assert not {s.table for s in first.sections} & set(EXCLUDED)
    assert sum(t.rows for t in first.telemetry) == 1_200
    target_db, target_lake = _installation(tmp_path / "target", state_url)
    report = import_bundle(target_db, target_lake, tmp_path / "one", actor="test")
    assert report.inserted["fleet_vehicles"] == 3 and report.telemetry_written == 1_200
    second = export_data(target_db, target_lake, Subject("acme"), tmp_path / "two", actor="test")
    assert _content(tmp_path / "one") == _content(tmp_path / "two")
    assert second.vss_version == first.vss_version
    with target_db.session() as session:  # the telemetry stays linked to its VINs
        us_vehicle = vehicle_pseudonym(session, "acme", vins[2])
    stored = target_lake.sql("acme", "SELECT DISTINCT vehicle FROM telemetry WHERE region = 'US'")
    assert stored.column("vehicle").to_pylist() == [us_vehicle]
    again = import_bundle(target_db, target_lake, tmp_path / "one", actor="test")
    assert sum(again.inserted.values()) == 0 and again.telemetry_written == 0
    assert again.telemetry_skipped == 1_200
    target_lake.close()
    target_db.dispose()


def test_every_section_validates_against_its_json_schema(source: Any, tmp_path: Path) -> None:
    database, lake, _ = source
    manifest = export_data(database, lake, Subject("acme"), tmp_path / "out", actor="test")
    for section in manifest.sections:
        schema = json.loads((tmp_path / "out" / section.schema).read_text())
        jsonschema.validate(json.loads((tmp_path / "out" / section.path).read_text()), schema)


def test_an_access_archive_holds_only_the_subjects_rows(
    source: Any, tmp_path: Path, state_url: StateUrl
) -> None:
    database, lake, vins = source
    manifest = export_data(database, lake, Subject("acme", frozenset({vins[0]})),
                           tmp_path / "dsar", actor="test")
    assert manifest.subject == "vehicles" and manifest.vins == (vins[0],)
    tables = {s.table for s in manifest.sections}
    assert "privacy_pseudonym_keys" not in tables and "tenants" not in tables
    for section in manifest.sections:
        rows = json.loads((tmp_path / "dsar" / section.path).read_text())
        assert {r["vin"] for r in rows} <= {vins[0]}, section.table
    assert [(t.region, t.rows) for t in manifest.telemetry] == [("EU", 400)]
    text = "".join(p.read_text() for p in (tmp_path / "dsar" / "data").glob("*.json"))
    assert vins[1] not in text and vins[2] not in text
    target_db, target_lake = _installation(tmp_path / "target", state_url)
    with pytest.raises(BadInputError, match="access archive"):
        import_bundle(target_db, target_lake, tmp_path / "dsar", actor="test")
    target_db.dispose()


def test_a_tampered_bundle_is_refused_and_nothing_is_imported(
    source: Any, tmp_path: Path, state_url: StateUrl
) -> None:
    database, lake, _ = source
    export_data(database, lake, Subject("acme"), tmp_path / "out", actor="test")
    twins = tmp_path / "out" / "data" / "twins.json"
    twins.write_text(twins.read_text().replace("compact-bev", "compact-bex", 1))
    target_db, target_lake = _installation(tmp_path / "target", state_url)
    with pytest.raises(VerificationError, match="twins.json"):
        import_bundle(target_db, target_lake, tmp_path / "out", actor="test")
    assert target_lake.regions() == []
    target_db.dispose()


def test_a_vin_registered_to_another_tenant_refuses_the_import(
    source: Any, tmp_path: Path, state_url: StateUrl
) -> None:
    """The cross-tenant attack: a bundle claiming a vehicle another tenant owns."""
    database, lake, vins = source
    export_data(database, lake, Subject("acme"), tmp_path / "out", actor="test")
    target_db, target_lake = _installation(tmp_path / "target", state_url)
    with target_db.session() as session:
        create_tenant(session, "globex", actor="test")
        provision_vehicle(session, tenant="globex", model="compact-bev", region="EU",
                          cloud_key=CLOUD.verify_key, actor="test", vin=vins[0])
    with pytest.raises(ConflictError, match=f"fleet_vehicles \\('{vins[0]}',\\) exists"):
        import_bundle(target_db, target_lake, tmp_path / "out", actor="test")
    with target_db.session() as session:  # nothing of acme landed
        assert list_vehicles(session, tenant="acme") == []
        assert [v.tenant for v in list_vehicles(session)] == ["globex"]
    assert target_lake.regions() == []
    # and renamed into another tenant of the same installation: acme's VINs are taken
    with pytest.raises(ConflictError, match="exists with other content"):
        import_bundle(database, lake, tmp_path / "out", actor="test", tenant="globex")
    assert lake.files("globex") == []
    target_db.dispose()


def test_a_path_leaving_the_bundle_is_refused(source: Any, tmp_path: Path) -> None:
    database, lake, _ = source
    export_data(database, lake, Subject("acme"), tmp_path / "out", actor="test")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BadInputError, match="outside the bundle"):
        verify(tmp_path / "out")


def test_an_export_never_overwrites(source: Any, tmp_path: Path) -> None:
    database, lake, _ = source
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty"):
        export_data(database, lake, Subject("acme"), tmp_path / "out", actor="test")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=st.sampled_from([t.name for t in portable_tables()]), data=_JSON)
def test_any_json_as_a_row_is_refused_cleanly_or_accepted(table: str, data: object) -> None:
    chosen = next(t for t in portable_tables() if t.name == table)
    try:
        row = from_json_row(chosen, data, "fuzz")
    except BadInputError:
        return
    assert set(row) == set(chosen.c.keys())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.one_of(_JSON, st.binary(max_size=200)))
def test_any_manifest_bytes_are_refused_cleanly(tmp_path: Path, data: object) -> None:
    root = tmp_path / "fuzz"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    (root / "manifest.json").write_bytes(raw)
    with pytest.raises((BadInputError, VerificationError)):
        verify(root)
