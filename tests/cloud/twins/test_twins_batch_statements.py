"""What one reported batch asks the database: a lookup of its twins' homes, one upsert per
store, and on PostgreSQL index probes instead of scans of every hash partition."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from twins_support import CABIN_TEMP, SOH, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, get_twin
from drivetrain.cloud.twins.registry import twin_homes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_PARAMS: dict[str, Any] = {}


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    """The SQL text of every statement run meanwhile (``.params``: their parameters)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))
        _PARAMS[seen[-1]] = parameters

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def test_a_batch_over_two_regions_sharing_the_state_store_writes_personal_values_once(
    database: Database, fleet: Fleet
) -> None:
    # EU and US vehicles. On PostgreSQL without state_region_urls both regions' store is the
    # state database; an embedded state database keeps each region in a file of its own.
    vins = fleet.acme_vins
    reports = {vin: {SOH: (90.0, T0), CABIN_TEMP: (21.5, T0)} for vin in vins}
    with _statements(database) as seen, database.session() as session:
        assert apply_reported(session, reports) == 2 * len(vins)
    personal_upserts = [s for s in seen if s.startswith("INSERT INTO twin_reported_personal")]
    home_lookups = [s for s in seen if s.startswith("SELECT") and "twins.region" in s]
    assert len(personal_upserts) == (1 if database.dialect == "postgresql" else 0)  # was 2
    assert len(home_lookups) == 1  # tenant and region in one lookup (was two)
    with database.session() as session:
        for vin in vins:
            twin = get_twin(session, vin, tenant="acme")
            assert twin.reported[CABIN_TEMP].value == 21.5 and twin.reported[SOH].value == 90.0


def test_twin_homes_names_tenant_and_region_and_leaves_out_vins_without_a_twin(
    database: Database, fleet: Fleet
) -> None:
    with database.session() as session:
        apply_reported(session, {vin: {SOH: (80.0, T0)} for vin in fleet.acme_vins})
        homes = twin_homes(session, [*fleet.acme_vins, fleet.globex_vin])
    assert homes == {vin: ("acme", region) for vin, region in
                     zip(fleet.acme_vins, ["EU", "EU", "EU", "US", "US"], strict=True)}  # fmt: skip


def test_on_postgresql_the_batch_lookups_probe_each_vins_partition_instead_of_scanning(
    database: Database, fleet: Fleet
) -> None:
    if database.dialect != "postgresql":
        assert database.dialect == "sqlite"  # not partitioned: the IN list is one index walk
        return
    reports = {vin: {SOH: (90.0, T0)} for vin in fleet.acme_vins}
    with _statements(database) as seen, database.session() as session:
        apply_reported(session, reports)
    lookups = [s for s in seen if "unnest" in s and "LATERAL" in s]
    assert len(lookups) == 2  # the batch's twins' homes; which of them have pending items
    with database.engine.connect() as connection:
        for statement in lookups:
            rows = connection.exec_driver_sql("EXPLAIN " + statement, _PARAMS[statement])
            plan = "\n".join(rows.scalars())
            assert "Nested Loop" in plan and "Seq Scan" not in plan, plan
