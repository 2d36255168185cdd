"""Pseudonym-key rotation end to end: a running ingest pipeline writes a vehicle's new data
under the new key, its older rows keep the old pseudonym (the lake is not rewritten), and an
access request returns both while an erasure removes both — checked in the raw Parquet files
with DuckDB. Another tenant's key is untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from ingest_helpers import NOW_NS, SECOND, SOC, Fleet, telemetry

from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.ingest import IngestPipeline, MemoryReportedState, TimestampWindow
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability import serve_access, serve_erasure
from drivetrain.cloud.privacy import (
    pseudonym_keys,
    rotate_pseudonym_key,
    vehicle_pseudonym,
    vehicle_pseudonyms,
)
from drivetrain.cloud.twins import sync_twins
from drivetrain.cloud.twins.history import property_history
from drivetrain.core.errors import NotFoundError


def _rows_by_vehicle(root: Path) -> dict[str, int]:
    files = [str(p) for p in root.rglob("*.parquet")]
    if not files:
        return {}
    with duckdb.connect() as con:
        found = con.execute(f"SELECT vehicle, count(*) FROM read_parquet({files}) "
                            "GROUP BY vehicle").fetchall()
    return {str(v): int(n) for v, n in found}


@pytest.fixture
def rotated(database: Database, fleet: Fleet, tmp_path: Path) -> Any:
    """eu1 and eu2 of acme, and gx1 of globex, send data; acme's key is rotated; eu1 and
    gx1 send more through the same running pipeline."""
    lake = Lake(tmp_path / "data")
    pipeline = IngestPipeline(database, lake, MemoryReportedState(), clock=lambda: NOW_NS,
                              window=TimestampWindow.of_seconds(30 * 86_400, 300),
                              vehicle_cache_ttl_s=0.0)
    pipeline.process([
        telemetry(fleet.vin("eu1"), fleet.key("eu1"), [(SOC, NOW_NS, 80.0)], seq=1),
        telemetry(fleet.vin("eu2"), fleet.key("eu2"), [(SOC, NOW_NS, 70.0)], seq=1),
        telemetry(fleet.vin("gx1"), fleet.key("gx1"), [(SOC, NOW_NS, 60.0)], seq=1),
    ])
    with database.session() as session:
        old = vehicle_pseudonym(session, "acme", fleet.vin("eu1"))
        globex_before = vehicle_pseudonym(session, "globex", fleet.vin("gx1"))
        key = rotate_pseudonym_key(session, "acme", actor="dpo")
        new = vehicle_pseudonym(session, "acme", fleet.vin("eu1"))
    assert key.version == 2 and key.current
    pipeline.process([
        telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                  [(SOC, NOW_NS + SECOND, 79.0), (SOC, NOW_NS + 2 * SECOND, 78.0)], seq=2),
        telemetry(fleet.vin("gx1"), fleet.key("gx1"), [(SOC, NOW_NS + SECOND, 59.0)], seq=2),
    ])
    yield lake, old, new, globex_before, tmp_path
    lake.close()


def test_after_pseudonym_rotation_a_vehicle_has_rows_under_both_pseudonyms(
    rotated: Any, database: Database, fleet: Fleet
) -> None:
    _, old, new, globex_before, tmp_path = rotated
    assert old != new
    rows = _rows_by_vehicle(tmp_path / "data")
    assert rows[old] == 1 and rows[new] == 2  # older rows are not rewritten
    with database.session() as session:
        assert vehicle_pseudonyms(session, "acme", fleet.vin("eu1")) == (new, old)
        # the other tenant's key is untouched: one version, same pseudonym, same rows
        assert [k.version for k in pseudonym_keys(session, "globex")] == [1]
        assert vehicle_pseudonym(session, "globex", fleet.vin("gx1")) == globex_before
        assert [k.version for k in pseudonym_keys(session, "acme")] == [2, 1]
        audit = list_audit(session, "acme", action="privacy.pseudonym_key.rotate")
        assert [(a.actor, a.details) for a in audit] == [("dpo", {"version": 2, "previous": 1})]
        assert list_audit(session, "globex", action="privacy.pseudonym_key.rotate") == []
    assert rows[globex_before] == 2


def test_an_access_request_returns_a_vehicles_rows_under_every_pseudonym(
    rotated: Any, database: Database, fleet: Fleet
) -> None:
    lake, old, new, _, tmp_path = rotated
    request = serve_access(database, lake, tenant="acme", vins=[fleet.vin("eu1")],
                           archive_root=tmp_path / "archives", actor="dpo")
    assert request.status == "done" and request.outcome["telemetry_rows"] == 3
    archive = tmp_path / "archives" / request.request_id
    assert _rows_by_vehicle(archive / "telemetry") == {old: 1, new: 2}
    manifest = json.loads((archive / "manifest.json").read_text())
    assert "eu2" not in json.dumps(manifest) and fleet.vin("eu2") not in json.dumps(manifest)


def test_an_erasure_after_pseudonym_rotation_removes_rows_under_every_pseudonym(
    rotated: Any, database: Database, fleet: Fleet
) -> None:
    lake, old, new, globex_before, tmp_path = rotated
    with database.session() as session:
        eu2 = vehicle_pseudonyms(session, "acme", fleet.vin("eu2"))
    request = serve_erasure(database, lake, tenant="acme", vins=[fleet.vin("eu1")], actor="dpo")
    assert request.status == "done" and sorted(request.subjects) == sorted([old, new])
    assert request.outcome["lake_rows"] == 3
    rows = _rows_by_vehicle(tmp_path / "data")  # the raw Parquet files
    assert old not in rows and new not in rows
    assert rows[eu2[1]] == 1 and rows[globex_before] == 2  # others untouched


def test_rotating_the_pseudonym_key_of_an_unknown_tenant_is_refused(database: Database) -> None:
    with database.session() as session, pytest.raises(NotFoundError, match="nobody"):
        rotate_pseudonym_key(session, "nobody", actor="dpo")
    with database.session() as session:
        assert pseudonym_keys(session, "nobody") == []


def test_a_twins_history_after_rotation_reads_the_rows_under_every_pseudonym_in_time_order(
    rotated: Any, database: Database, fleet: Fleet
) -> None:
    lake, _, _, _, _ = rotated
    start = datetime.fromtimestamp((NOW_NS - SECOND) / 1e9, UTC)
    end = datetime.fromtimestamp((NOW_NS + 3 * SECOND) / 1e9, UTC)
    with database.session() as session:
        sync_twins(session, "acme", force=True)
        points = property_history(session, lake, fleet.vin("eu1"), SOC, tenant="acme",
                                  start=start, end=end)
    assert [p.value for p in points] == [80.0, 79.0, 78.0]  # the old key's row, then the new
