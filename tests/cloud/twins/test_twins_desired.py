"""Desired state: versioned writes with optimistic concurrency, tenancy, writes by query."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from twins_support import CABIN_TEMP, CHARGE_LIMIT, Fleet

from drivetrain.cloud.infra import Database, list_audit
from drivetrain.cloud.twins import (
    apply_reported,
    get_delta,
    get_twin,
    reconciliation_summary,
    set_desired,
    set_desired_by_query,
)
from drivetrain.core.errors import (
    BadInputError,
    ConflictError,
    NotFoundError,
    QuerySyntaxError,
    SignalRangeError,
    StorageError,
    VersionConflictError,
)


def _set(database: Database, vin: str, values: dict[str, object], if_match: int | None,
         tenant: str = "acme", **kwargs: object) -> int:
    with database.session() as session:
        return set_desired(session, vin, values, tenant=tenant, if_match=if_match, actor="op",
                           **kwargs).version  # type: ignore[arg-type]


def test_each_write_bumps_the_version_and_returns_the_new_twin(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    assert _set(database, vin, {CHARGE_LIMIT: 80}, 0) == 1
    assert _set(database, vin, {CABIN_TEMP: 21.5}, 1) == 2
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
        delta = get_delta(session, vin, tenant="acme")
    assert twin.desired == {CHARGE_LIMIT: 80, CABIN_TEMP: 21.5} and twin.etag == '"2"'
    assert delta.version == 2 and delta.values == twin.desired


def test_stale_if_match_is_a_conflict_naming_both_versions_and_changes_nothing(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    _set(database, vin, {CHARGE_LIMIT: 80}, 0)
    with pytest.raises(VersionConflictError, match='version 1, not 0') as raised:
        _set(database, vin, {CHARGE_LIMIT: 50}, 0)
    assert (raised.value.current, raised.value.given) == (1, 0)
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").desired == {CHARGE_LIMIT: 80}


def test_concurrent_writers_with_the_same_version_exactly_one_wins(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: list[object] = []
    lock = threading.Lock()

    def write(limit: int) -> None:
        barrier.wait()
        try:
            version = _set(database, vin, {CHARGE_LIMIT: limit}, 0)
            result: object = ("won", version, limit)
        except VersionConflictError as e:
            result = ("conflict", e.current, e.given)
        except (StorageError, ConflictError) as e:  # pragma: no cover - shown if it happens
            result = ("error", str(e))
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=write, args=(50 + i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [o for o in outcomes if o[0] == "won"]  # type: ignore[index]
    assert len(winners) == 1, outcomes
    assert len(outcomes) == writers
    assert all(o == ("conflict", 1, 0) for o in outcomes if o not in winners), outcomes
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert twin.version == 1 and twin.desired == {CHARGE_LIMIT: winners[0][2]}  # type: ignore[index]


def test_concurrent_writers_that_reread_all_land_in_sequence(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]

    def write_until_done(limit: int) -> None:
        while True:
            with database.session() as session:
                version = get_twin(session, vin, tenant="acme").version
            try:
                _set(database, vin, {CHARGE_LIMIT: limit}, version)
                return
            except VersionConflictError:
                continue

    threads = [threading.Thread(target=write_until_done, args=(60 + i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").version == 5


def test_another_tenants_twin_answers_exactly_like_a_missing_one(
    database: Database, fleet: Fleet
) -> None:
    foreign = fleet.globex_vin
    with database.session() as session, pytest.raises(NotFoundError) as seen:
        get_twin(session, foreign, tenant="acme")
    with database.session() as session, pytest.raises(NotFoundError) as missing:
        get_twin(session, "DTVAAAAAA1AAAAAAA", tenant="acme")
    assert str(seen.value).replace(foreign, "X") == str(missing.value).replace("DTVAAAAAA1AAAAAAA", "X")
    with pytest.raises(NotFoundError):
        _set(database, foreign, {CHARGE_LIMIT: 10}, None, tenant="acme")
    with database.session() as session:
        assert get_twin(session, foreign, tenant="globex").version == 0


def test_sensors_and_out_of_range_values_are_refused_without_a_new_version(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    with pytest.raises(BadInputError, match="is a VSS sensor"):
        _set(database, vin, {CHARGE_LIMIT: 80, "Vehicle.Speed": 10}, 0)
    with pytest.raises(SignalRangeError):
        _set(database, vin, {CHARGE_LIMIT: 101}, 0)
    with pytest.raises(BadInputError, match="ttl_s"):
        _set(database, vin, {CHARGE_LIMIT: 80}, 0, ttl_s=0)
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").version == 0


def test_replace_sets_the_document_exactly_and_none_removes_a_path(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    _set(database, vin, {CHARGE_LIMIT: 80, CABIN_TEMP: 20.0}, 0)
    _set(database, vin, {CABIN_TEMP: None}, 1)
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").desired == {CHARGE_LIMIT: 80}
    _set(database, vin, {CABIN_TEMP: 22.0}, 2, replace=True)
    with database.session() as session:
        assert get_twin(session, vin, tenant="acme").desired == {CABIN_TEMP: 22.0}


def test_writes_are_audited_with_actor_version_and_values(database: Database, fleet: Fleet) -> None:
    _set(database, fleet.acme_vins[0], {CHARGE_LIMIT: 80}, 0)
    with database.session() as session:
        entry = list_audit(session, "acme")[-1]
    assert (entry.action, entry.actor, entry.target) == (
        "twins.desired.set", "op", f"vehicle:{fleet.acme_vins[0]}"
    )
    assert entry.details["version"] == 1 and entry.details["values"] == {CHARGE_LIMIT: 80}


def test_write_by_query_sets_every_selected_twin_and_only_those(
    database: Database, fleet: Fleet
) -> None:
    eu = fleet.acme_vins[:3]
    with database.session() as session:
        apply_reported(session, {eu[0]: {CHARGE_LIMIT: (70.0, datetime.now(UTC))}})
    with database.session() as session:
        result = set_desired_by_query(
            session, 'region == "EU"', {CHARGE_LIMIT: 70}, tenant="acme", actor="op"
        )
    assert result.matched == 3
    with database.session() as session:
        twins = {vin: get_twin(session, vin, tenant="acme") for vin in fleet.acme_vins}
        globex = get_twin(session, fleet.globex_vin, tenant="globex")
        summary = reconciliation_summary(session, "acme", 'region == "EU"', path=CHARGE_LIMIT)
        entry = list_audit(session, "acme")[-1]
    assert all(twins[v].version == 1 and twins[v].desired == {CHARGE_LIMIT: 70} for v in eu)
    assert all(twins[v].version == 0 and not twins[v].items for v in fleet.acme_vins[3:])
    assert globex.version == 0 and not globex.items  # another tenant's EU car is untouched
    assert twins[eu[0]].items[0].status == "converged"  # it already reported 70
    assert (summary.twins, summary.pending, summary.converged) == (3, 2, 1)
    assert entry.action == "twins.desired.set_by_query" and entry.details["matched"] == 3


def test_write_by_query_keeps_items_whose_value_is_unchanged(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    first = _set(database, vin, {CHARGE_LIMIT: 70}, 0)
    with database.session() as session:
        set_at = get_twin(session, vin, tenant="acme").items[0].set_at
        set_desired_by_query(session, f'vin == "{vin}"', {CHARGE_LIMIT: 70}, tenant="acme", actor="op")
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
    assert twin.version == first + 1
    assert twin.items[0].set_at == set_at and twin.items[0].set_version == first


def test_write_by_query_refuses_bad_queries_and_values_before_changing_anything(
    database: Database, fleet: Fleet
) -> None:
    with database.session() as session, pytest.raises(QuerySyntaxError, match="column 8"):
        set_desired_by_query(session, 'region = "EU"', {CHARGE_LIMIT: 70}, tenant="acme", actor="op")
    with database.session() as session, pytest.raises(BadInputError, match="none given"):
        set_desired_by_query(session, 'region == "EU"', {}, tenant="acme", actor="op")
    with database.session() as session:
        assert all(get_twin(session, v, tenant="acme").version == 0 for v in fleet.acme_vins)


def test_write_by_query_reasserts_values_the_vehicle_drifted_from(
    database: Database, fleet: Fleet
) -> None:
    vin = fleet.acme_vins[0]
    with database.session() as session:
        apply_reported(session, {vin: {CHARGE_LIMIT: (80.0, datetime.now(UTC))}})
    _set(database, vin, {CHARGE_LIMIT: 80}, 0)  # converged at once
    with database.session() as session:
        apply_reported(session, {vin: {CHARGE_LIMIT: (90.0, datetime.now(UTC))}})  # drifts
        set_desired_by_query(session, f'vin == "{vin}"', {CHARGE_LIMIT: 80}, tenant="acme", actor="op")
    with database.session() as session:
        twin = get_twin(session, vin, tenant="acme")
        delta = get_delta(session, vin, tenant="acme")
    assert twin.items[0].status == "pending" and twin.items[0].set_version == 2
    assert delta.values == {CHARGE_LIMIT: 80}
