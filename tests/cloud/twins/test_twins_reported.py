"""Reported state: bulk newer-wins upserts, all-or-nothing validation, convergence, acks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from twins_support import CABIN_TEMP, CHARGE_LIMIT, SOH, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import (
    apply_reported,
    apply_stored_rows,
    get_twin,
    path_major,
    record_acks,
    record_ecu_inventory,
    set_desired,
)
from drivetrain.cloud.twins.personal import personal_values
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError
from drivetrain.core.wire import Ack

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _report(
    database: Database, reports: Mapping[str, Mapping[str, tuple[object, datetime]]]
) -> int:
    with database.session() as session:
        return apply_reported(session, reports)


def test_first_report_creates_the_twin_with_the_registry_metadata(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[3]
    assert _report(database, {vin: {"Vehicle.Speed": (42.5, T0)}}) == 1
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert (twin.tenant, twin.model, twin.region, twin.version) == ("acme", "compact-bev", "US", 0)
    assert twin.reported["Vehicle.Speed"].value == 42.5
    assert twin.reported["Vehicle.Speed"].ts == T0


def test_newer_measurement_wins_and_a_late_older_one_changes_nothing(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    assert _report(database, {vin: {SOH: (91.0, T0), "Vehicle.Speed": (10.0, T0)}}) == 2
    late = {vin: {SOH: (99.0, T0 - timedelta(seconds=5)), "Vehicle.Speed": (20.0, T0 + timedelta(seconds=1))}}
    assert _report(database, late) == 1
    assert _report(database, {vin: {SOH: (98.0, T0)}}) == 0  # same timestamp: not newer
    with database.session() as session:
        reported = get_twin(session, vin, tenant="acme").reported
    assert reported[SOH].value == 91.0 and reported["Vehicle.Speed"].value == 20.0


def test_values_keep_their_vss_types(database: Database, fleet: Fleet) -> None:
    vin = fleet.acme_vins[0]
    report = {
        "Vehicle.Cabin.Light.IsDomeOn": (1.0, T0),  # booleans travel as 0/1 in telemetry
        CHARGE_LIMIT: (80.0, T0),  # uint8 scaled from CAN
        "Vehicle.Powertrain.Transmission.PerformanceMode": ("SPORT", T0),
    }
    _report(database, {vin: report})
    with database.session() as session:
        reported = get_twin(session, vin, tenant="acme").reported
    assert reported["Vehicle.Cabin.Light.IsDomeOn"].value is True
    assert reported[CHARGE_LIMIT].value == 80 and isinstance(reported[CHARGE_LIMIT].value, int)
    assert reported["Vehicle.Powertrain.Transmission.PerformanceMode"].value == "SPORT"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"Vehicle.Speed": (float("nan"), T0)}, "not finite"),
        ({"Vehicle.Speed": (None, T0)}, "not a scalar"),
        ({"Vehicle.Speed": (1.0, datetime(2026, 1, 1))}, "timezone-aware"),
        ({"Vehicle..Speed": (1.0, T0)}, "not a VSS path"),
        ({"Vehicle.Speed": 1.0}, "pair"),
    ],
)
def test_one_bad_value_refuses_the_whole_batch_and_names_it(
    database: Database, fleet: Fleet, bad: dict[str, object], message: str
) -> None:
    good, other = fleet.acme_vins[:2]
    with pytest.raises(BadInputError, match=message):
        _report(database, {good: {SOH: (90.0, T0)}, other: bad})  # type: ignore[dict-item]
    with database.session() as session:
        assert get_twin(session, good, tenant="acme").reported == {}


def test_unregistered_vehicles_are_refused_and_nothing_is_written(
    database: Database, fleet: Fleet
) -> None:
    with pytest.raises(NotFoundError, match="DTVAAAAAA1AAAAAAA|not registered"):
        _report(database, {fleet.acme_vins[0]: {SOH: (90.0, T0)}, "DTVAAAAAA1AAAAAAA": {SOH: (1.0, T0)}})
    with pytest.raises(BadInputError, match="not a VIN"):
        _report(database, {"nope": {SOH: (1.0, T0)}})
    with database.session() as session:
        assert get_twin(session, fleet.acme_vins[0], tenant="acme").reported == {}


def test_a_matching_report_converges_the_pending_item(database: Database, fleet: Fleet) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        set_desired(session, vin, {CHARGE_LIMIT: 80, CABIN_TEMP: 21.5}, tenant="acme",
                    if_match=0, actor="op")
    _report(database, {vin: {CHARGE_LIMIT: (79.0, datetime.now(UTC))}})
    _report(database, {vin: {CABIN_TEMP: (21.4999999, datetime.now(UTC))}})
    with database.session() as session:
        items = {i.path: i for i in get_twin(session, vin, tenant="acme").items}
    assert items[CHARGE_LIMIT].status == "pending"
    assert items[CABIN_TEMP].status == "converged"
    assert items[CABIN_TEMP].time_to_converge_s is not None


def test_rejecting_ack_fails_the_items_it_carried_with_the_vehicles_reason(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        set_desired(session, vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=0, actor="op")
    with database.session() as session:
        record_acks(session, vin, [Ack("a" * 32, "desired_state", "rejected", "limit locked", 1)])
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert twin.items[0].status == "failed"
    assert twin.items[0].reason == "rejected by the vehicle: limit locked"


@pytest.mark.parametrize(
    ("ack", "message"),
    [
        (Ack("a" * 32, "desired_state", "applied", "", 9), "version 9 is not a desired version"),
        (Ack("a" * 32, "desired_state", "applied", "", None), "version None"),
        (Ack("a" * 32, "campaign", "applied", "", 1), "ref_kind is 'campaign'"),
    ],
)
def test_acks_for_versions_the_twin_never_had_are_refused(
    database: Database, fleet: Fleet, ack: Ack, message: str
) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        set_desired(session, vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=0, actor="op")
    with database.session() as session, pytest.raises(BadInputError, match=message):
        record_acks(session, vin, [ack])
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert twin.acked_version is None and twin.items[0].status == "pending"


def test_applied_ack_records_the_highest_applied_version(database: Database, fleet: Fleet) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        set_desired(session, vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=0, actor="op")
        set_desired(session, vin, {CHARGE_LIMIT: 70}, tenant="acme", if_match=1, actor="op")
    with database.session() as session:
        record_acks(session, vin, [
            Ack("b" * 32, "desired_state", "applied", "", 2),
            Ack("a" * 32, "desired_state", "applied", "", 1),
        ])
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").acked_version == 2


def test_reported_software_versions_update_the_ecu_inventory(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        record_ecu_inventory(session, vin, {"BMS": ("HW-7", "2.3.1"), "VCU": (None, "1.0")})
    with database.session() as session:
        record_ecu_inventory(session, vin, {"BMS": (None, "2.4.0")})
    with database.session() as session:
        ecus = {e.name: e for e in get_twin(session, vin, tenant="acme").ecus}
    assert (ecus["BMS"].hardware_id, ecus["BMS"].software_version) == ("HW-7", "2.4.0")
    assert ecus["VCU"].source == "reported"
    with database.session() as session, pytest.raises(BadInputError, match="not a version"):
        record_ecu_inventory(session, vin, {"BMS": (None, "soon")})


def test_a_batch_larger_than_one_statement_is_written_whole_and_counted(
    database: Database, fleet: Fleet
) -> None:
    from drivetrain.cloud.twins.upsert import UPSERT_CHUNK

    paths = [f"Vehicle.Private.Test.Value{i}" for i in range(UPSERT_CHUNK + 37)]
    reports = {vin: {p: (float(i), T0) for i, p in enumerate(paths)} for vin in fleet.acme_vins[:2]}
    assert _report(database, reports) == 2 * len(paths)
    newer = {vin: {p: (v + 1, T0 + timedelta(seconds=1)) for p, (v, _) in values.items()}
             for vin, values in reports.items()}
    newer[fleet.acme_vins[0]][paths[0]] = (0.0, T0 - timedelta(seconds=1))  # older: ignored
    assert _report(database, newer) == 2 * len(paths) - 1
    with database.session() as session:
        reported = get_twin(session, fleet.acme_vins[0], tenant="acme").reported
    assert reported[paths[0]].value == 0.0 and reported[paths[-1]].value == float(len(paths))


def test_a_row_the_database_refuses_is_a_conflict_and_the_batch_is_rolled_back(
    database: Database, fleet: Fleet
) -> None:
    # SQLite rows go through the driver's own cursor: its errors must still reach the caller
    # as the session's ConflictError (here a reported row of a VIN with no twin), not raw.
    from drivetrain.cloud.twins.upsert import upsert_rows

    vin = fleet.acme_vins[0]
    _report(database, {vin: {SOH: (90.0, T0)}})
    ns = int(T0.timestamp()) * 10**9
    with pytest.raises(ConflictError), database.session() as session:
        upsert_rows(session, [(vin, SOH, "f", 10.0, None, ns + 1, ns),
                              ("DTVAAAAAA1AAAAAAA", SOH, "f", 1.0, None, ns, ns)])
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").reported[SOH].value == 90.0


def test_batches_of_only_strings_or_only_numbers_round_trip_and_switch_kinds(
    database: Database, fleet: Fleet
) -> None:
    # PostgreSQL sends a batch as one array per column: a column that is NULL in every row
    # (no strings, or no numbers) must still be typed and stored as NULL.
    vin = fleet.acme_vins[1]
    mode = "Vehicle.Powertrain.Transmission.PerformanceMode"
    assert _report(database, {vin: {mode: ("SPORT", T0)}}) == 1
    assert _report(database, {vin: {mode: (2, T0 + timedelta(seconds=1))}}) == 1
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").reported[mode].value == 2
    assert _report(database, {vin: {mode: ("ECO", T0 + timedelta(seconds=2))}}) == 1
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").reported[mode].value == "ECO"


def _stored(vin: str, path: str, kind: str, num: float | None, text: str | None,
            at: datetime) -> tuple[str, str, str, float | None, str | None, int, int]:
    ns = int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000
    return (vin, path, kind, num, text, ns, ns)


def test_rows_in_stored_form_count_changes_newer_wins_and_keep_personal_values_apart(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[1]
    location = "Vehicle.CurrentLocation.Latitude"  # personal: kept in the region's store
    rows = [_stored(vin, SOH, "f", 91.0, None, T0), _stored(vin, CHARGE_LIMIT, "i", 80.0, None, T0),
            _stored(vin, location, "f", 48.1, None, T0)]
    with database.session() as session:
        assert apply_stored_rows(session, rows, now=T0) == 3  # counted, without RETURNING
    older = [_stored(vin, SOH, "f", 50.0, None, T0 - timedelta(seconds=1)),
             _stored(vin, location, "f", 10.0, None, T0 + timedelta(seconds=1))]
    with database.session() as session:
        assert apply_stored_rows(session, older, now=T0) == 1
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
        personal = personal_values(session, vin, twin.region)
    assert twin.reported[SOH].value == 91.0 and twin.reported[SOH].ts == T0
    assert twin.reported[CHARGE_LIMIT].value == 80 and isinstance(twin.reported[CHARGE_LIMIT].value, int)
    assert [(r.path, r.num) for r in personal] == [(location, 10.0)]


def test_rows_in_stored_form_converge_pending_items_and_refuse_a_bad_path(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[2]
    with database.session() as session:
        set_desired(session, vin, {CABIN_TEMP: 21.5}, tenant="acme", if_match=0, actor="op")
    with database.session() as session:
        now = datetime.now(UTC)
        assert apply_stored_rows(session, [_stored(vin, CABIN_TEMP, "f", 21.5, None, now)],
                                 now=now) == 1
    with database.session() as session:
        items = {i.path: i for i in get_twin(session, vin, tenant="acme").items}
    assert items[CABIN_TEMP].status == "converged"
    with database.session() as session, pytest.raises(BadInputError, match="not a VSS path"):
        apply_stored_rows(session, [_stored(vin, "Vehicle..Speed", "f", 1.0, None, T0)], now=T0)


def test_path_major_says_the_key_order_of_the_reported_table(database: Database) -> None:
    # ingestion hands its rows over in this order, so that the upsert walks the key in order
    with database.session() as session:
        key = inspect(session.connection()).get_pk_constraint("twin_reported")
        assert key["constrained_columns"] == (
            ["path", "vin"] if path_major(session) else ["vin", "path"])


def test_a_batch_mixing_twins_with_and_without_pending_items_counts_every_change_once(
    database: Database, fleet: Fleet
) -> None:
    # Rows of twins without a pending item are counted, those of twins with one are named
    # for the convergence: the count spans both, older values in either change nothing.
    pending_vin, quiet_vin = fleet.acme_vins[3], fleet.acme_vins[4]
    location = "Vehicle.CurrentLocation.Latitude"  # personal: kept in the region's store
    with database.session() as session:
        set_desired(session, pending_vin, {CABIN_TEMP: 21.5}, tenant="acme", if_match=0, actor="op")
    _report(database, {pending_vin: {SOH: (90.0, T0)}, quiet_vin: {SOH: (90.0, T0)}})
    later = T0 + timedelta(seconds=1)
    batch: dict[str, dict[str, tuple[object, datetime]]] = {
        pending_vin: {CABIN_TEMP: (21.5, later), SOH: (80.0, T0 - timedelta(seconds=1)),
                      location: (48.1, later)},
        quiet_vin: {CABIN_TEMP: (19.0, later), SOH: (70.0, later), location: (52.5, later)},
    }
    assert _report(database, batch) == 5
    assert _report(database, batch) == 0
    with database.session() as session:
        pending_twin = get_twin(session, pending_vin, tenant="acme")
        quiet_twin = get_twin(session, quiet_vin, tenant="acme")
    assert {i.path: i.status for i in pending_twin.items} == {CABIN_TEMP: "converged"}
    assert pending_twin.reported[SOH].value == 90.0
    assert quiet_twin.reported[SOH].value == 70.0 and quiet_twin.reported[CABIN_TEMP].value == 19.0


def test_personal_rows_handed_over_path_major_are_written_in_their_tables_key_order(
    database: Database, fleet: Fleet
) -> None:
    from drivetrain.cloud.twins.models import PERSONAL_REPORTED, REPORTED
    from drivetrain.cloud.twins.upsert import _in_key_order

    vins = sorted(fleet.acme_vins[:3])
    latitude, longitude = "Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"
    # (path, vin): the order ingestion hands its rows over in on SQLite
    rows = [_stored(vin, path, "f", 1.0, None, T0) for path in (latitude, longitude) for vin in vins]
    with database.session() as session:
        # twin_reported_personal is keyed (vin, path) on both engines
        assert [r[:2] for r in _in_key_order(session, rows, PERSONAL_REPORTED)] == sorted(
            r[:2] for r in rows)
        shared = _in_key_order(session, rows, REPORTED)
        assert shared == rows if path_major(session) else shared == sorted(rows)
        assert apply_stored_rows(session, rows, now=T0) == len(rows)
    with database.session() as session:
        stored = [(v, r.path) for v in vins for r in personal_values(
            session, v, get_twin(session, v, tenant="acme").region)]
    assert stored == sorted(r[:2] for r in rows)
