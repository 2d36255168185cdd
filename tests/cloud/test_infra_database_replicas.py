"""Connection pools and read replicas of the PostgreSQL state database.

The replica here is a second, separately migrated schema on the same server, filled with a
snapshot of the primary's twins (``copy_rows``) — the test role has neither REPLICATION nor
superuser and the server runs ``wal_level=replica``, so a logical subscription cannot be made.
What is proved is the routing: which engine serves a read, told apart by data that only one
of the two databases holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import (
    READ_ONLY_INFO,
    Database,
    PoolOptions,
    create_tenant,
    open_database,
)
from drivetrain.cloud.infra.testing import copy_rows, temporary_postgres_schema
from drivetrain.cloud.twins import apply_reported, get_twin, query_twins
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import ConfigurationError, NotFoundError, StorageError
from drivetrain.core.settings import load_settings

SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
TWIN_TABLES = ["twins", "twin_reported", "twin_desired", "twin_ecus"]
pg_only = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
CLOUD_KEY = SigningKey.from_seed(b"replica-test-cloud-key-000000000")


def provision(database: Database, count: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    vins = []
    with database.session() as session:
        for _ in range(count):
            vehicle, _ = provision_vehicle(
                session, tenant="acme", model="compact-bev", region="EU",
                cloud_key=CLOUD_KEY.verify_key, actor="test", rng=rng,
                signing_key=SigningKey.from_seed(rng.randbytes(32)),
            )  # fmt: skip
            vins.append(vehicle.vin)
    return vins


@pytest.fixture
def replica_urls(postgres_worker_database: str) -> Iterator[list[str]]:
    """Two more migrated schemas on the server, standing in for read replicas."""
    with temporary_postgres_schema(postgres_worker_database, "r") as one, \
            temporary_postgres_schema(postgres_worker_database, "r") as two:
        for url in (one, two):
            replica = Database(url)
            replica.upgrade()
            replica.dispose()
        yield [one, two]


@pytest.fixture
def primary_with_twins(database: Database, replica_urls: list[str]) -> tuple[Database, list[str]]:
    """Five EU twins with state of health 90, snapshotted into both replicas, then 70 on the
    primary only."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
    vins = provision(database, 5, seed=4)
    measured = datetime.now(UTC)
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (90.0, measured)} for vin in vins})
    for url in replica_urls:
        copy_rows(str(database.engine.url.render_as_string(hide_password=False)), url, TWIN_TABLES)
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (70.0, measured + timedelta(seconds=1))} for vin in vins})
    return database, vins


@pytest.fixture
def routed(primary_with_twins: tuple[Database, list[str]], replica_urls: list[str]
           ) -> Iterator[Callable[[int], Database]]:
    """``routed(n)``: the primary with its first ``n`` replicas configured (disposed after)."""
    made: list[Database] = []

    def make(replicas: int) -> Database:
        made.append(Database(primary_with_twins[0].engine.url, replica_urls=replica_urls[:replicas]))
        return made[-1]

    yield make
    for database in made:
        database.dispose()


@pg_only
def test_reads_are_served_by_the_replica_and_writes_by_the_primary(
    primary_with_twins: tuple[Database, list[str]], routed: Callable[[int], Database]
) -> None:
    vins = primary_with_twins[1]
    database = routed(1)
    with database.read_session() as session:
        assert session.get_bind() is database.replica_engines[0]
        assert session.info[READ_ONLY_INFO] is True
        assert get_twin(session, vins[0], tenant="acme").reported[SOH].value == 90.0
        assert query_twins(session, "acme", f'reported."{SOH}" < 80').total == 0
    with database.session() as session:  # the primary holds the newer value
        assert session.get_bind() is database.engine
        assert get_twin(session, vins[0], tenant="acme").reported[SOH].value == 70.0
        assert query_twins(session, "acme", f'reported."{SOH}" < 80').total == 5


@pg_only
def test_replicas_take_reads_in_turn(
    routed: Callable[[int], Database], replica_urls: list[str]
) -> None:
    database = routed(2)
    served = []
    for _ in range(4):
        with database.read_session() as session:
            served.append(session.get_bind())
            schema = session.execute(text("SELECT current_schema()")).scalar()
            assert schema in "".join(replica_urls)
    first, second = database.replica_engines
    assert served == [first, second, first, second]


@pg_only
def test_a_write_on_a_replica_session_is_refused_and_changes_nothing(
    primary_with_twins: tuple[Database, list[str]], routed: Callable[[int], Database]
) -> None:
    vins = primary_with_twins[1]
    database = routed(1)
    with pytest.raises(StorageError, match="read-only transaction"), database.read_session() as session:
        apply_reported(session, {vins[0]: {SOH: (10.0, datetime.now(UTC) + timedelta(hours=1))}})
    with database.read_session() as session:
        assert get_twin(session, vins[0], tenant="acme").reported[SOH].value == 90.0


@pg_only
def test_a_twin_missing_on_the_replica_is_not_created_there(
    primary_with_twins: tuple[Database, list[str]], routed: Callable[[int], Database]
) -> None:
    late = provision(primary_with_twins[0], 1, seed=9)[0]  # registered after the snapshot
    database = routed(1)
    with pytest.raises(NotFoundError, match="has no twin"), database.read_session() as session:
        get_twin(session, late, tenant="acme")
    with database.read_session() as session:  # and the replica was not changed by trying
        assert session.execute(text("SELECT count(*) FROM twins WHERE vin = :v"), {"v": late}).scalar() == 0
    with database.session() as session:  # the primary creates it from the registry
        assert get_twin(session, late, tenant="acme").vin == late


@pg_only
def test_pool_settings_reach_every_engine(database: Database, replica_urls: list[str]) -> None:
    pool = PoolOptions(size=3, max_overflow=2, timeout_s=4.0, recycle_s=600, pre_ping=True,
                       pgbouncer=True)  # fmt: skip
    routed = Database(database.engine.url, pool=pool, replica_urls=replica_urls)
    try:
        for engine in (routed.engine, *routed.replica_engines):
            assert engine.pool.size() == 3  # type: ignore[attr-defined]
            assert engine.pool._max_overflow == 2  # type: ignore[attr-defined]
            assert engine.pool._recycle == 600
            assert engine.pool._pre_ping is True
            with engine.connect() as connection:  # PgBouncer: no server-side prepared statements
                raw = connection.connection.driver_connection
                assert raw is not None and raw.prepare_threshold is None
        with routed.session() as session:  # the platform works through it
            create_tenant(session, "acme", actor="test")
    finally:
        routed.dispose()


def test_replica_settings_are_checked(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIVETRAIN_DATABASE_URL", raising=False)  # the primary is the point
    monkeypatch.delenv("DRIVETRAIN_PROFILE", raising=False)
    with pytest.raises(ConfigurationError, match="needs a PostgreSQL primary"):
        load_settings(state_replica_urls=["postgresql+psycopg://r@h/db"])
    with pytest.raises(ConfigurationError, match=r"state_replica_urls\[0\] = 'sqlite:///h/db': expected a PostgreSQL URL"):
        load_settings(database_url="postgresql+psycopg://p@h/db", state_replica_urls=["sqlite:///h/db"])
    with pytest.raises(ConfigurationError, match="state_pool_size"):
        load_settings(state_pool_size=0)


def test_open_database_takes_pool_replicas_and_partitions_from_settings(tmp_path: object) -> None:
    settings = load_settings(
        data_dir=str(tmp_path), database_url="postgresql+psycopg://p@127.0.0.1:1/db",
        state_replica_urls=["postgresql+psycopg://r@127.0.0.1:1/db"], state_pool_size=7,
        state_twin_partitions=8,
    )  # fmt: skip
    database = open_database(settings)
    try:
        assert database.engine.pool.size() == 7  # type: ignore[attr-defined]
        assert [e.url.username for e in database.replica_engines] == ["r"]
        assert database._alembic_config(None).attributes["twin_partitions"] == 8
    finally:
        database.dispose()
    with pytest.raises(ConfigurationError, match="read replicas need a PostgreSQL primary"):
        Database("sqlite://", replica_urls=["postgresql+psycopg://r@h/db"])
