"""Fleet queries run in the database: semantics, pagination, counts and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twins_support import CHARGE_LIMIT, SOH, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import (
    apply_reported,
    query_twins,
    record_ecu_inventory,
    set_desired,
    set_ecu,
)
from drivetrain.core.errors import BadInputError, QuerySyntaxError

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def stocked(database: Database, fleet: Fleet) -> list[str]:
    """acme: EU0 SoH 75 BMS 2.3.9; EU1 SoH 85 BMS 2.10.0; EU2 SoH 79.5 no BMS; US0 SoH 70
    BMS 2.4.0-rc.1 (hw HW-B); US1 nothing reported. globex's EU car: SoH 50, BMS 1.0."""
    v = fleet.acme_vins
    with database.session() as session:
        apply_reported(session, {
            v[0]: {SOH: (75.0, T0), "Vehicle.Cabin.Light.IsDomeOn": (True, T0)},
            v[1]: {SOH: (85.0, T0), "Vehicle.Powertrain.Transmission.PerformanceMode": ("SPORT", T0)},
            v[2]: {SOH: (79.5, T0), "Vehicle.Cabin.Light.IsDomeOn": (False, T0)},
            v[3]: {SOH: (70.0, T0)},
            fleet.globex_vin: {SOH: (50.0, T0)},
        })
        record_ecu_inventory(session, v[0], {"BMS": ("HW-A", "2.3.9")})
        record_ecu_inventory(session, v[1], {"BMS": ("HW-A", "2.10.0")})
        record_ecu_inventory(session, fleet.globex_vin, {"BMS": ("HW-A", "1.0")})
        set_ecu(session, v[3], "BMS", tenant="acme", hardware_id="HW-B",
                software_version="2.4.0-rc.1", actor="op")
        set_desired(session, v[4], {CHARGE_LIMIT: 80}, tenant="acme", if_match=0, actor="op")
    return v


def _vins(database: Database, query: str, tenant: str = "acme") -> set[str]:
    with database.session() as session:
        page = query_twins(session, tenant, query, limit=1000)
    assert page.total == len(page.twins)
    return {t.vin for t in page.twins}


def test_the_issue_example_selects_old_bms_software_on_worn_eu_batteries(
    database: Database, stocked: list[str]
) -> None:
    query = f'region == "EU" and reported."{SOH}" < 80 and software."BMS" < "2.4.0"'
    assert _vins(database, query) == {stocked[0]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {0, 1, 2, 3, 4}),
        ('region == "US"', {3, 4}),
        ('region != "US"', {0, 1, 2}),
        ('region in ["US", "JP"]', {3, 4}),
        ('region not in ["US"]', {0, 1, 2}),
        (f'reported."{SOH}" <= 79.5', {0, 2, 3}),
        (f'reported."{SOH}" != 75', {1, 2, 3, 4}),  # != is "not ==": includes no value
        (f'not reported."{SOH}" >= 80', {0, 2, 3, 4}),
        (f'exists(reported."{SOH}")', {0, 1, 2, 3}),
        (f'not exists(reported."{SOH}")', {4}),
        ('reported."Vehicle.Cabin.Light.IsDomeOn" == true', {0}),
        ('reported."Vehicle.Cabin.Light.IsDomeOn" == false', {2}),
        ('reported."Vehicle.Powertrain.Transmission.PerformanceMode" == "SPORT"', {1}),
        (f'reported."{SOH}" == "75"', set()),  # a string never equals a number
        ('software."BMS" >= "2.4.0"', {1}),  # 2.10.0 > 2.4.0 as versions, not as text
        ('software."BMS" < "2.4.0"', {0, 3}),  # a pre-release sorts before its release
        ('software."BMS" in ["2.3.9", "2.10"]', {0, 1}),
        ('hardware."BMS" == "HW-B"', {3}),
        ('exists(software."BMS")', {0, 1, 3}),
        (f'desired."{CHARGE_LIMIT}" == 80', {4}),
        (f'desired."{CHARGE_LIMIT}" > 80', set()),
        ('model == "compact-bev" and (region == "US" or software."BMS" > "2.5")', {1, 3, 4}),
        ('owner == "nobody"', set()),
        ('not exists(owner)', {0, 1, 2, 3, 4}),
    ],
)
def test_queries_select_exactly_the_matching_twins(
    database: Database, stocked: list[str], query: str, expected: set[int]
) -> None:
    assert _vins(database, query) == {stocked[i] for i in expected}


def test_a_query_never_sees_another_tenants_twins(
    database: Database, stocked: list[str], fleet: Fleet
) -> None:
    assert fleet.globex_vin not in _vins(database, f'reported."{SOH}" < 60 or region == "EU"')
    assert _vins(database, f'vin == "{fleet.globex_vin}"') == set()
    assert _vins(database, "", tenant="globex") == {fleet.globex_vin}


def test_pages_follow_the_cursor_and_report_the_total(database: Database, stocked: list[str]) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        with database.session() as session:
            page = query_twins(session, "acme", 'model == "compact-bev"', limit=2, cursor=cursor)
        assert page.total == 5 and len(page.twins) <= 2
        seen += [t.vin for t in page.twins]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(stocked)


def test_summaries_count_desired_items_by_status(database: Database, stocked: list[str]) -> None:
    with database.session() as session:
        page = query_twins(session, "acme", f'vin == "{stocked[4]}"')
    assert (page.twins[0].version, page.twins[0].pending, page.twins[0].converged) == (1, 1, 0)


def test_registered_vehicles_never_seen_before_are_found(database: Database, fleet: Fleet) -> None:
    assert _vins(database, 'region == "US"') == set(fleet.acme_vins[3:])


def test_bad_limits_cursors_and_queries_are_refused(database: Database, fleet: Fleet) -> None:
    with database.session() as session:
        for limit in (0, 1001, True):
            with pytest.raises(BadInputError, match="limit"):
                query_twins(session, "acme", "", limit=limit)  # type: ignore[arg-type]
        with pytest.raises(BadInputError, match="cursor"):
            query_twins(session, "acme", "", cursor="' OR 1=1 --")
        with pytest.raises(QuerySyntaxError, match="column 1"):
            query_twins(session, "acme", "== 3")
