"""The twins tables hash-partitioned by VIN on PostgreSQL (migration twins_0003), reached online
from a database that already holds twins; SQLite unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import text
from twins_support import CHARGE_LIMIT, SOH, Fleet, provision

from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.twins import apply_reported, get_twin, query_twins, set_desired, sync_twins
from drivetrain.cloud.twins import partitions as parts
from drivetrain.core.errors import DrivetrainError, StorageError

# A technical path: its values stay in twin_reported (personal ones go to the region store).
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
pg_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _state(database: Database) -> str:
    with database.engine.connect() as connection:
        return parts.state(connection)


def _rows_by_partition(database: Database, table: str) -> dict[str, str]:
    """VIN -> the partition (its number) that holds the VIN's rows of ``table``."""
    with database.engine.connect() as connection:
        rows = connection.execute(text(f"SELECT DISTINCT vin, tableoid::regclass::text FROM {table}"))
        return {vin: where.rsplit("_p", 1)[1] for vin, where in rows}


def _downgrade_twins(database: Database) -> None:
    with database.engine.begin() as connection:
        command.downgrade(database._alembic_config(connection), "twins_0002")


@pg_only
def test_twins_tables_are_hash_partitioned_and_a_twins_rows_share_one_partition(
    database: Database, fleet: Fleet
) -> None:
    now = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (90.0, now), SOC: (12.5, now)} for vin in fleet.acme_vins})
        set_desired(session, fleet.acme_vins[0], {CHARGE_LIMIT: 80}, tenant="acme", if_match=None,
                    actor="test")  # fmt: skip
    with database.engine.connect() as connection:
        assert _state(database) == "partitioned"
        for table in parts.TABLES:
            assert parts.partition_count(connection, table) == parts.DEFAULT_PARTITIONS
    twins = _rows_by_partition(database, "twins")
    reported = _rows_by_partition(database, "twin_reported")
    desired = _rows_by_partition(database, "twin_desired")
    assert set(reported) == set(fleet.acme_vins)
    # rows land in the partitions, not the parent, and each VIN's rows sit in the partition of
    # the same number in every table (hash of the VIN)
    assert all(reported[vin] == twins[vin] for vin in reported)
    assert desired[fleet.acme_vins[0]] == twins[fleet.acme_vins[0]]
    assert len(set(twins.values())) > 1  # six VINs spread over several partitions
    with database.session() as session:
        page = query_twins(session, "acme", f'reported."{SOH}" > 80')
        assert [t.vin for t in page.twins] == sorted(fleet.acme_vins)
        assert get_twin(session, fleet.acme_vins[0], tenant="acme").reported[SOC].value == 12.5


@pg_only
def test_partition_count_is_chosen_at_migration_time(empty_database: Database) -> None:
    database = Database(empty_database.engine.url, migration_options={"twin_partitions": 4})
    try:
        database.upgrade()
        with database.engine.connect() as connection:
            assert [parts.partition_count(connection, t) for t in parts.TABLES] == [4, 4, 4, 4]
            names = connection.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'twin_reported'::regclass ORDER BY 1")).scalars().all()  # fmt: skip
        assert names == [f"twin_reported_p0{i}" for i in range(4)]
    finally:
        database.dispose()


@pg_only
def test_bad_partition_count_fails_the_migration_and_changes_nothing(empty_database: Database) -> None:
    database = Database(empty_database.engine.url, migration_options={"twin_partitions": 0})
    try:
        with pytest.raises(ValueError, match="twin partitions 0: expected 1 to 1024"):
            database.upgrade()
        assert database.current_revisions() == ()
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_twins_are_not_partitioned(database: Database, fleet: Fleet) -> None:
    with database.engine.connect() as connection:
        assert parts.state(connection) == "not-postgresql"
    with pytest.raises(StorageError, match="PostgreSQL only"):
        parts.copy_online(database)


@pytest.fixture
def unpartitioned_with_twins(database: Database) -> Iterator[tuple[Database, list[str]]]:
    """A database at twins_0002 (plain tables) holding 40 twins with two values each."""
    _downgrade_twins(database)
    assert _state(database) == "unpartitioned"
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
    vins = [c.vin for c in provision(database, "acme", ["EU", "US"] * 20, seed=3)]
    now = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {v: {SOH: (float(i), now), SOC: (1.0, now)} for i, v in enumerate(vins)})
    yield database, vins


@pg_only
def test_a_database_holding_twins_is_partitioned_online_while_reports_keep_coming(
    unpartitioned_with_twins: tuple[Database, list[str]],
) -> None:
    database, vins = unpartitioned_with_twins
    database.upgrade()  # the migration only builds the shadow and its mirror triggers
    assert _state(database) == "copying"
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM twin_reported_part")).scalar() == 0

    stop = threading.Event()
    written: dict[str, float] = {}
    errors: list[DrivetrainError] = []
    start = datetime.now(UTC)

    def report() -> None:  # a worker storing reports throughout the copy and the swap
        tick = 0
        try:
            while not stop.is_set() or tick < 5:
                tick += 1
                vin = vins[tick % len(vins)]
                with database.session() as session:
                    apply_reported(session, {vin: {SOC: (float(tick), start + timedelta(seconds=tick))}})
                written[vin] = float(tick)
        except DrivetrainError as e:  # surfaced by the assertion below
            errors.append(e)

    worker = threading.Thread(target=report)
    worker.start()
    try:
        copied = parts.copy_online(database, batch_rows=7)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert errors == []
    assert copied.state == "partitioned" and _state(database) == "partitioned"
    assert copied.copied["twins"] == 40 and copied.copied["twin_reported"] >= 80
    with database.session() as session:  # nothing lost: every twin, every newest value
        for i, vin in enumerate(vins):
            twin = get_twin(session, vin, tenant="acme")
            assert twin.reported[SOH].value == float(i)
            assert twin.reported[SOC].value == written.get(vin, 1.0)
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM twin_reported")).scalar() == 80
        leftovers = connection.execute(text(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'dt_mirror_%' "
            "AND pronamespace = current_schema()::regnamespace")).scalar()  # fmt: skip
        assert leftovers == 0
        assert connection.execute(text("SELECT to_regclass('twins_part')")).scalar() is None
    assert parts.copy_online(database).copied == {}  # idempotent: nothing left to do


@pg_only
def test_deleting_a_twin_mid_copy_leaves_no_row_behind(
    unpartitioned_with_twins: tuple[Database, list[str]],
) -> None:
    database, vins = unpartitioned_with_twins
    database.upgrade()
    with database.session() as session:  # copied by the trigger, then deleted with its values
        session.execute(text("UPDATE twins SET owner = 'x' WHERE vin = :vin"), {"vin": vins[0]})
        session.execute(text("DELETE FROM twins WHERE vin = :vin"), {"vin": vins[0]})
    parts.copy_online(database, batch_rows=5)
    with database.engine.connect() as connection:
        assert connection.execute(
            text("SELECT count(*) FROM twin_reported WHERE vin = :vin"), {"vin": vins[0]}
        ).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM twins")).scalar() == 39


@pg_only
def test_downgrade_returns_plain_tables_with_every_row(database: Database, fleet: Fleet) -> None:
    now = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (77.0, now)} for vin in fleet.acme_vins})
    _downgrade_twins(database)
    assert _state(database) == "unpartitioned"
    with database.engine.connect() as connection:  # read as stored: the code is at a later schema
        assert connection.execute(
            text("SELECT num FROM twin_reported WHERE vin = :vin AND path = :path"),
            {"vin": fleet.acme_vins[1], "path": SOH},
        ).scalar() == 77.0
    database.upgrade()  # and back: the tables hold twins now, so the online path is taken
    assert _state(database) == "copying"
    parts.copy_online(database)
    assert _state(database) == "partitioned"


def test_partition_twins_command_reports_what_it_did(
    cli: Callable[..., str], backend: str, database_url: str
) -> None:
    cli("db", "upgrade")
    if backend == "sqlite":
        assert "twins are partitioned on PostgreSQL only" in cli("db", "partition-twins", code=1)
        return
    assert "already partitioned (16 partitions)" in cli("db", "partition-twins")
    # a database that held twins when it was migrated: the command copies and swaps
    database = Database(database_url)
    try:
        _downgrade_twins(database)
        with database.session() as session:
            create_tenant(session, "acme", actor="test")
        provision(database, "acme", ["EU"] * 3, seed=5)
        with database.session() as session:
            sync_twins(session, "acme", force=True)
        database.upgrade()
        assert _state(database) == "copying"
    finally:
        database.dispose()
    out = cli("db", "partition-twins", "--batch-rows", "2")
    assert "copied twins 3, twin_reported 0, twin_desired 0, twin_ecus 0 rows" in out
    assert "twins now in 16 hash partitions" in out
