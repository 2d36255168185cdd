"""Data subject requests: an access archive of one vehicle, and an erasure that leaves no
readable trace — checked by reading the raw Parquet files with DuckDB and every state table —
with the one-month deadline tracked, and re-applied after a backup is restored."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.models import Base
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.lake.keys import LocalKeyService
from drivetrain.cloud.portability import (
    reapply_erasures,
    serve_access,
    serve_erasure,
    verify,
)
from drivetrain.cloud.privacy import give_consent, set_consent, vehicle_pseudonym
from drivetrain.cloud.privacy.requests import RESPONSE_DAYS, list_requests
from drivetrain.cloud.twins import apply_reported
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError

CLOUD = SigningKey.from_seed(b"privacy-rights-test-cloud-key-00")
T0_NS = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp()) * 10**9


def _rows(pseudonym: str, seed: int, n: int = 300) -> pa.Table:
    paths = ["Vehicle.CurrentLocation.Latitude", "Vehicle.Speed"] * (n // 2)
    return pa.table({
        "vehicle": pa.array([pseudonym] * n).dictionary_encode(),
        "path": pa.array(paths).dictionary_encode(),
        "ts": pa.array([T0_NS + i * 10**9 for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "value": pa.array([48.0 + i / 1000 for i in range(n)]),
        "text": pa.nulls(n, pa.utf8()),
        "category": pa.array(["location", "driving_behaviour"] * (n // 2)).dictionary_encode(),
        "batch_id": pa.array([f"{seed:08x}{i // 100:024x}" for i in range(n)]).dictionary_encode(),
    })


@pytest.fixture
def world(tmp_path: Path, state_url: Callable[[Path], str]) -> Any:
    yield from _world(tmp_path, Lake(tmp_path / "data"), state_url)


@pytest.fixture
def shredding_world(tmp_path: Path, state_url: Callable[[Path], str]) -> Any:
    """The same world on the encrypted lake (a data key per vehicle)."""
    keys = LocalKeyService(tmp_path / "data" / "keys")
    yield from _world(tmp_path, Lake(tmp_path / "data", keys=keys), state_url)


def _world(tmp_path: Path, lake: Lake, state_url: Callable[[Path], str]) -> Any:
    database = Database(state_url(tmp_path))
    database.upgrade()
    vins = []
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        for i in range(2):
            vehicle, _ = provision_vehicle(session, tenant="acme", model="compact-bev",
                                           region="EU", cloud_key=CLOUD.verify_key, actor="test",
                                           rng=random.Random(i))
            vins.append(vehicle.vin)
        apply_reported(session, {v: {"Vehicle.CurrentLocation.Latitude": (48.1, datetime.now(UTC))}
                                 for v in vins})
        set_consent(session, vin=vins[0], tenant="acme", categories=["location", "technical"],
                    source="driver-app", actor="test")
        give_consent(session, tenant="acme", vin=vins[0], purpose="insurance",
                     categories=["location"], person="driver", source="driver-app", actor="test")
        dead_letters = Base.metadata.tables["ingest_dead_letters"]
        session.execute(sa.insert(dead_letters).values(
            received_at=datetime.now(UTC), vin=vins[0], tenant_id="acme",
            topic=f"dt/v1/{vins[0]}/telemetry", kind="telemetry", batch_id=None,
            level="message", reason="bad_signature", detail="raw location inside",
            sample_count=3, payload_format="dtw1", payload=b"lat=48.1371 lon=11.5754",
            payload_size=23, dedup_key="k" * 64, status="open", replayed_at=None,
            replay_outcome=None, replay_attempts=0, replay_of=None))
        pseudonyms = [vehicle_pseudonym(session, "acme", v) for v in vins]
    # two appends per vehicle, so files hold both vehicles' rows
    lake.append("EU", "acme", pa.concat_tables([_rows(pseudonyms[0], 1), _rows(pseudonyms[1], 2)]))
    lake.append("EU", "acme", pa.concat_tables([_rows(pseudonyms[0], 3), _rows(pseudonyms[1], 4)]))
    yield database, lake, vins, pseudonyms, tmp_path
    lake.close()
    database.dispose()


def _parquet_rows_of(root: Path, pseudonym: str) -> int:
    files = [str(p) for p in root.rglob("*.parquet")]
    if not files:
        return 0
    with duckdb.connect() as con:
        found = con.execute(f"SELECT count(*) FROM read_parquet({files}) WHERE vehicle = ?",
                            [pseudonym]).fetchall()
    return int(found[0][0])


def _state_mentions(database: Database, vin: str) -> list[str]:
    found = []
    with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_log",):
                continue
            for column in table.columns:
                if isinstance(column.type, (sa.String, sa.Text)):
                    hit = connection.execute(sa.select(sa.func.count()).select_from(table).where(
                        column.contains(vin))).scalar()
                    if hit:
                        found.append(f"{table.name}.{column.name}")
    return found


def test_erasure_leaves_no_readable_trace_in_parquet_or_state(world: Any) -> None:
    database, lake, vins, pseudonyms, tmp_path = world
    lake_root = tmp_path / "data" / "lake"
    assert _parquet_rows_of(lake_root, pseudonyms[0]) == 600
    assert _state_mentions(database, vins[0])
    request = serve_erasure(database, lake, tenant="acme", vins=[vins[0]], actor="dpo")
    assert request.status == "done" and request.subjects == (pseudonyms[0],)
    assert request.outcome["lake_rows"] == 600
    assert request.outcome["state_rows"]["ingest_dead_letters"] == 1
    assert _parquet_rows_of(lake_root, pseudonyms[0]) == 0  # the raw files, not the index
    assert _parquet_rows_of(lake_root, pseudonyms[1]) == 600  # the other car is untouched
    assert _state_mentions(database, vins[0]) == []
    assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py() == 600


@pytest.mark.embedded_only(reason="restores a backup by copying the SQLite file")
def test_an_erasure_is_reapplied_after_a_backup_is_restored(world: Any) -> None:
    database, lake, vins, pseudonyms, tmp_path = world
    lake.close()
    shutil.copytree(tmp_path / "data", tmp_path / "backup-data")
    shutil.copy(tmp_path / "state.db", tmp_path / "backup.db")
    lake = Lake(tmp_path / "data")
    serve_erasure(database, lake, tenant="acme", vins=[vins[0]], actor="dpo")
    lake.close()
    # the lake's backup comes back, with the erased rows ...
    shutil.rmtree(tmp_path / "data")
    shutil.copytree(tmp_path / "backup-data", tmp_path / "data")
    restored_lake = Lake(tmp_path / "data")
    assert _parquet_rows_of(tmp_path / "data", pseudonyms[0]) == 600
    # ... and the register of erasure requests erases them again
    summary = reapply_erasures(database, restored_lake, tenant="acme", actor="dpo")
    assert summary["lake_rows"] == 600
    assert _parquet_rows_of(tmp_path / "data", pseudonyms[0]) == 0
    restored_lake.close()


def test_an_erasure_on_the_encrypted_lake_destroys_the_key_and_reaches_backups(
    shredding_world: Any,
) -> None:
    database, lake, vins, pseudonyms, tmp_path = shredding_world
    lake_root = tmp_path / "data" / "lake"
    shutil.copytree(lake_root, tmp_path / "backup")
    assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py() == 1200
    request = serve_erasure(database, lake, tenant="acme", vins=[vins[0]], actor="dpo")
    assert request.status == "done"
    assert request.outcome["lake_keys_destroyed"] == 1
    assert request.outcome["lake_rows"] == 600  # its files, deleted too
    assert lake.sql("acme", "SELECT vehicle, count(*) AS n FROM telemetry GROUP BY vehicle")\
        .to_pylist() == [{"vehicle": pseudonyms[1], "n": 600}]
    files = [*lake_root.rglob("*.parquet"), *(tmp_path / "backup").rglob("*.parquet")]
    assert len(files) == 2 + 4  # the other car's two files; the backup's four
    for path in files:  # without the keys DuckDB opens none, and no file holds the pseudonym
        with duckdb.connect() as con, pytest.raises(duckdb.Error):
            con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()
        assert pseudonyms[0].encode() not in path.read_bytes()


def test_an_access_request_writes_a_complete_archive_and_tracks_the_deadline(world: Any) -> None:
    database, lake, vins, _, tmp_path = world
    request = serve_access(database, lake, tenant="acme", vins=[vins[0]],
                           archive_root=tmp_path / "requests", actor="owner-app")
    assert request.status == "done" and request.subjects == (vins[0],)
    assert request.due_at - request.received_at == timedelta(days=RESPONSE_DAYS)
    manifest = verify(Path(request.outcome["archive"]))
    tables = {s.table: s.rows for s in manifest.sections}
    assert tables["twins"] == 1 and tables["privacy_purpose_grants"] == 1
    assert tables["ingest_dead_letters"] == 1 and tables["fleet_vehicles"] == 1
    assert [t.rows for t in manifest.telemetry] == [600]
    with database.session() as session:
        listed = list_requests(session, "acme")
    assert [(r.kind, r.status, r.overdue(datetime.now(UTC))) for r in listed] == [
        ("access", "done", False)]
    assert listed[0].overdue(datetime.now(UTC) + timedelta(days=31)) is False  # done in time


def test_a_request_naming_no_vehicle_is_refused(world: Any) -> None:
    database, lake, *_ = world
    with pytest.raises(BadInputError, match="1 to 100 vehicles"):
        serve_erasure(database, lake, tenant="acme", vins=[], actor="dpo")


def _row(table: sa.Table, **values: object) -> dict[str, object]:
    """A row of ``table`` with a plain value in every column, then ``values``."""
    plain: dict[str, object] = {}
    for column in table.columns:
        kind = type(column.type).__name__
        plain[column.name] = (datetime.now(UTC) if "DateTime" in kind else False
                              if kind == "Boolean" else 1 if "Integer" in kind else "x")
    return plain | values


def test_an_erasure_keeps_invoices_the_law_requires_and_deletes_subscriptions(
    world: Any,
) -> None:
    database, lake, vins, *_ = world
    subscriptions = Base.metadata.tables["commerce_subscriptions"]
    invoices = Base.metadata.tables["commerce_invoices"]
    lines = Base.metadata.tables["commerce_invoice_lines"]
    with database.session() as session:
        session.execute(sa.insert(subscriptions).values(_row(
            subscriptions, subscription_id="sub-1", tenant_id="acme", vin=vins[0])))
        session.execute(sa.insert(invoices).values(_row(
            invoices, invoice_id="inv-1", tenant_id="acme", vin=vins[0])))
        session.execute(sa.insert(lines).values(_row(lines, invoice_id="inv-1", line_no=1)))
    archive = serve_access(database, lake, tenant="acme", vins=[vins[0]],
                           archive_root=world[4] / "requests", actor="owner-app")
    exported = {s.table: s.rows for s in verify(Path(archive.outcome["archive"])).sections}
    assert exported["commerce_subscriptions"] == exported["commerce_invoices"] == 1
    assert exported["commerce_invoice_lines"] == 1
    serve_erasure(database, lake, tenant="acme", vins=[vins[0]], actor="dpo")
    with database.session() as session:
        counts = [session.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                  for t in (subscriptions, invoices, lines)]
    assert counts == [0, 1, 1]
