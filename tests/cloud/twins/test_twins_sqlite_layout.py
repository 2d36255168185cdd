"""SQLite keeps reported values keyed (path, vin) and ECUs keyed (ecu, vin) (migration
twins_0008): a fleet query's lookups of one path go twin after twin through neighbouring
pages. Same answers, same upserts; the downgrade restores the (vin, ...) keys with every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from twins_support import SOH, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, get_twin, query_twins, record_ecu_inventory

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def _key(database: Database, table: str) -> list[str]:
    """The primary-key columns of ``table``, in key order."""
    with database.engine.connect() as connection:
        rows = connection.exec_driver_sql(f"PRAGMA table_info({table})").all()
    return [row[1] for row in sorted(rows, key=lambda r: r[5]) if row[5]]


def _rows(database: Database, table: str) -> list[tuple[object, ...]]:
    with database.engine.connect() as connection:
        return list(connection.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all())


def _stock(database: Database, fleet: Fleet) -> None:
    now = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {
            vin: {SOH: (70.0 + 5 * i, now), SOC: (40.0 + i, now)}
            for i, vin in enumerate(fleet.acme_vins)
        })  # fmt: skip
        for i, vin in enumerate(fleet.acme_vins):
            record_ecu_inventory(session, vin, {"BMS": ("HW-A", f"2.{i}.0")})


@sqlite_only
def test_sqlite_keys_values_by_path_and_ecus_by_name_and_the_query_uses_those_keys(
    database: Database, fleet: Fleet
) -> None:
    assert _key(database, "twin_reported") == ["path", "vin"]
    assert _key(database, "twin_ecus") == ["ecu", "vin"]
    _stock(database, fleet)
    with database.engine.connect() as connection:
        plan = " | ".join(row[3] for row in connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM twins t WHERE "
            "EXISTS (SELECT 1 FROM twin_reported r WHERE r.vin = t.vin AND r.path = ? AND r.num < 80) "
            "AND EXISTS (SELECT 1 FROM twin_ecus e WHERE e.vin = t.vin AND e.ecu = 'BMS')", (SOH,)))
    assert "PRIMARY KEY (path=? AND vin=?)" in plan
    assert "PRIMARY KEY (ecu=? AND vin=?)" in plan
    with database.session() as session:
        page = query_twins(session, "acme", f'reported."{SOH}" < 80 and software."BMS" < "2.2.0"')
        twin = get_twin(session, fleet.acme_vins[1], tenant="acme")
    # SoH 70, 75 (and 80, 85, ... not below 80); BMS 2.0.0 and 2.1.0 below 2.2.0
    assert [t.vin for t in page.twins] == fleet.acme_vins[:2] and page.total == 2
    assert twin.reported[SOC].value == 41.0 and twin.reported[SOH].value == 75.0
    # an older measurement still loses, a newer one wins: the upsert's conflict is (vin, path)
    later = datetime.now(UTC) + timedelta(seconds=5)
    with database.session() as session:
        changed = apply_reported(session, {fleet.acme_vins[1]: {
            SOH: (99.0, later), SOC: (1.0, later - timedelta(days=1))}})
        assert changed == 1
        twin = get_twin(session, fleet.acme_vins[1], tenant="acme")
    assert twin.reported[SOH].value == 99.0 and twin.reported[SOC].value == 41.0


@sqlite_only
def test_downgrade_restores_the_vin_keys_with_every_row_and_upgrade_comes_back(
    database: Database, fleet: Fleet
) -> None:
    _stock(database, fleet)
    reported, ecus = _rows(database, "twin_reported"), _rows(database, "twin_ecus")
    assert len(reported) == 2 * len(fleet.acme_vins)
    with database.engine.begin() as connection:
        command.downgrade(database._alembic_config(connection), "twins_0007")
    assert _key(database, "twin_reported") == ["vin", "path"]
    assert _key(database, "twin_ecus") == ["vin", "ecu"]
    assert _rows(database, "twin_reported") == reported and _rows(database, "twin_ecus") == ecus
    database.upgrade()
    assert _key(database, "twin_reported") == ["path", "vin"]
    assert _rows(database, "twin_reported") == reported and _rows(database, "twin_ecus") == ecus
    with database.engine.begin() as connection:  # deleting a twin still cascades to its rows
        connection.exec_driver_sql("DELETE FROM twins WHERE vin = ?", (fleet.acme_vins[0],))
    left = {row[0] for row in _rows(database, "twin_reported")} | {
        row[0] for row in _rows(database, "twin_ecus")}
    assert fleet.acme_vins[0] not in left and fleet.acme_vins[1] in left
