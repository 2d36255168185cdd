"""Residency of desired state: the value of a desired item on a personal path (a cabin
temperature set from an app) lives only in the store of the vehicle's region; the item (its
version, status and expiry) stays in the state database without it. Reads, the delta sent to
the vehicle, convergence, fleet queries, writes by query, audit entries, access archives,
erasure and upgrades reach the value there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlalchemy as sa
from residency_support import CABIN_TEMPERATURE, state_url, telemetry, traces
from twins_support import CHARGE_LIMIT

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.portability.rights import serve_access, serve_erasure
from drivetrain.cloud.twins import (
    get_delta,
    get_twin,
    query_twins,
    reconciliation_summary,
    set_desired,
    set_desired_by_query,
)
from drivetrain.cloud.twins.desired_personal import REJECTED_IN_REGION
from drivetrain.cloud.twins.models import DESIRED
from drivetrain.cloud.twins.reported import record_acks
from drivetrain.core.wire.messages import Ack

# Distinctive values: the EU and the US driver's cabin temperature, and one set fleet-wide.
EU_WANTED = 21.75
US_WANTED = 18.25
FLEET_WANTED = 23.125


def _texts(value: float) -> tuple[str, ...]:
    """How ``value`` would read in a JSON document (an audit entry) that quotes it."""
    return (f'Temperature": {value}',)


def _set(database: Database, car: VehicleCredentials, value: float | None) -> None:
    with database.session() as session:
        set_desired(
            session,
            car.vin,
            {CABIN_TEMPERATURE: value},
            tenant="acme",
            if_match=None,
            actor="test",
        )


def test_an_eu_vehicles_desired_cabin_value_lands_only_in_the_eu_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu, us = cars["eu1"], cars["us1"]
    _set(regional, eu, EU_WANTED)
    _set(regional, us, US_WANTED)
    with regional.session() as session:
        set_desired(session, eu.vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=None, actor="test")
    main = state_url(regional)
    eu_value = (EU_WANTED,), _texts(EU_WANTED)
    assert sorted(set(traces(stores["EU"], *eu_value))) == ["twin_desired_personal.num"]
    assert traces(stores["US"], *eu_value) == []
    assert traces(main, *eu_value) == []  # nor in an audit entry
    assert sorted(set(traces(stores["US"], (US_WANTED,), ()))) == ["twin_desired_personal.num"]
    assert traces(main, (US_WANTED,), _texts(US_WANTED)) == []
    # The item stays in the state database, without its value; a non-personal value stays too.
    with regional.read_session() as session:
        rows = session.execute(
            sa.select(DESIRED.c.path, DESIRED.c.kind, DESIRED.c.num, DESIRED.c.status)
            .where(DESIRED.c.vin == eu.vin)
            .order_by(DESIRED.c.path)
        ).all()
    assert [tuple(r) for r in rows] == [
        (CABIN_TEMPERATURE, "f", None, "pending"),
        (CHARGE_LIMIT, "i", 80.0, "pending"),
    ]
    with regional.read_session() as session:
        twin = get_twin(session, eu.vin, tenant="acme")
        assert {i.path: i.value for i in twin.items} == {
            CABIN_TEMPERATURE: EU_WANTED,
            CHARGE_LIMIT: 80,
        }
        delta = get_delta(session, eu.vin, tenant="acme")  # what the reconciler publishes
        assert delta.to_dict()["values"] == {CABIN_TEMPERATURE: EU_WANTED, CHARGE_LIMIT: 80}
        page = query_twins(session, "acme", f'desired."{CABIN_TEMPERATURE}" == {EU_WANTED}')
        assert [t.vin for t in page.twins] == [eu.vin]
        page = query_twins(session, "acme", f'desired."{CABIN_TEMPERATURE}" < 20')
        assert [t.vin for t in page.twins] == [us.vin]
    # The vehicle reports the value: the item converges on the value in the EU store.
    pipeline = IngestPipeline(regional, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    pipeline.process([telemetry(eu, {CABIN_TEMPERATURE: EU_WANTED})])
    with regional.read_session() as session:
        twin = get_twin(session, eu.vin, tenant="acme")
        assert {i.path: i.status for i in twin.items} == {
            CABIN_TEMPERATURE: "converged",
            CHARGE_LIMIT: "pending",
        }
    assert traces(main, *eu_value) == []
    # Removing the item removes its value from the store.
    _set(regional, eu, None)
    assert traces(stores["EU"], (EU_WANTED,), ()) == ["twin_reported_personal.num"]


def test_a_write_by_query_keeps_each_value_in_its_vehicles_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu, us = cars["eu1"], cars["us1"]
    _set(regional, eu, EU_WANTED)
    pipeline = IngestPipeline(regional, MemoryLake(), TwinsReportedState(), vehicle_cache_ttl_s=0)
    pipeline.process([telemetry(eu, {CABIN_TEMPERATURE: FLEET_WANTED})])
    with regional.session() as session:
        result = set_desired_by_query(
            session,
            "region == 'EU' OR region == 'US'",
            {CABIN_TEMPERATURE: FLEET_WANTED},
            tenant="acme",
            actor="test",
        )
    assert result.matched == 2
    assert traces(state_url(regional), (FLEET_WANTED,), _texts(FLEET_WANTED)) == []
    assert sorted(traces(stores["EU"], (FLEET_WANTED,), ())) == [
        "twin_desired_personal.num",
        "twin_reported_personal.num",
    ]
    assert traces(stores["US"], (FLEET_WANTED,), ()) == ["twin_desired_personal.num"]
    with regional.read_session() as session:
        items = {
            vin: {i.path: i for i in get_twin(session, vin, tenant="acme").items}[CABIN_TEMPERATURE]
            for vin in (eu.vin, us.vin)
        }
    # The EU car reports the value already (converged at once); the US car not yet.
    assert {vin: (i.value, i.status) for vin, i in items.items()} == {
        eu.vin: (FLEET_WANTED, "converged"),
        us.vin: (FLEET_WANTED, "pending"),
    }
    # The same write again leaves items that already ask for the value as they are.
    with regional.session() as session:
        set_desired_by_query(
            session,
            "region == 'EU' OR region == 'US'",
            {CABIN_TEMPERATURE: FLEET_WANTED},
            tenant="acme",
            actor="test",
        )
    with regional.read_session() as session:
        again = {
            vin: {i.path: i for i in get_twin(session, vin, tenant="acme").items}[CABIN_TEMPERATURE]
            for vin in (eu.vin, us.vin)
        }
    assert again == items


def test_access_and_erasure_reach_desired_values_in_the_region_store(
    regional: Database,
    cars: dict[str, VehicleCredentials],
    stores: dict[str, str],
    tmp_path: Path,
) -> None:
    eu = cars["eu1"]
    _set(regional, eu, EU_WANTED)
    _set(regional, cars["us1"], US_WANTED)
    lake = Lake(tmp_path / "data")
    try:
        access = serve_access(
            regional,
            lake,
            tenant="acme",
            vins=[eu.vin],
            archive_root=tmp_path / "archives",
            actor="test",
        )
        archive = tmp_path / "archives" / access.request_id / "data"
        values = json.loads((archive / "twin_desired_personal.json").read_text())
        assert [(r["vin"], r["path"], r["num"]) for r in values] == [
            (eu.vin, CABIN_TEMPERATURE, EU_WANTED)
        ]
        items = json.loads((archive / "twin_desired.json").read_text())
        assert [(r["path"], r["num"]) for r in items] == [(CABIN_TEMPERATURE, None)]
        serve_erasure(regional, lake, tenant="acme", vins=[eu.vin], actor="test")
    finally:
        lake.close()
    assert traces(stores["EU"], (EU_WANTED,), (eu.vin,)) == []
    assert traces(stores["US"], (US_WANTED,), ()) == ["twin_desired_personal.num"]


def test_an_upgrade_moves_desired_values_stored_before_to_their_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"]
    _set(regional, eu, 20.0)
    with regional.session() as session:  # as written before the values were kept per region
        session.execute(sa.update(DESIRED).where(DESIRED.c.vin == eu.vin).values(num=EU_WANTED))
    # (On PostgreSQL, twin_desired and its hash partition each show the row.)
    found = {re.sub(r"_p\d+\.", ".", t) for t in traces(state_url(regional), (EU_WANTED,), ())}
    assert found == {"twin_desired.num"}
    regional.upgrade()
    assert traces(state_url(regional), (EU_WANTED,), ()) == []
    assert traces(stores["EU"], (EU_WANTED,), ()) == ["twin_desired_personal.num"]
    with regional.read_session() as session:
        twin = get_twin(session, eu.vin, tenant="acme")
        assert [(i.path, i.value) for i in twin.items] == [(CABIN_TEMPERATURE, EU_WANTED)]


def test_the_vehicles_reason_for_rejecting_a_personal_item_lands_only_in_its_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"]
    _set(regional, eu, EU_WANTED)
    with regional.session() as session:
        set_desired(session, eu.vin, {CHARGE_LIMIT: 80}, tenant="acme", if_match=None, actor="test")
        version = get_twin(session, eu.vin, tenant="acme").version
        said = f"cabin set point {EU_WANTED} refused: child lock"
        record_acks(session, eu.vin, [Ack("m1", "desired_state", "rejected", said, version)])
    texts = (f"{EU_WANTED} refused",)
    assert traces(stores["EU"], (), texts) == ["twin_desired_reasons.reason"] * 2
    assert traces(stores["US"], (), texts) == []
    assert traces(state_url(regional), (), texts) == []
    with regional.read_session() as session:
        items = {i.path: i for i in get_twin(session, eu.vin, tenant="acme").items}
        stored = dict(session.execute(
            sa.select(DESIRED.c.path, DESIRED.c.reason).where(DESIRED.c.vin == eu.vin)).all())
    assert (items[CABIN_TEMPERATURE].status, items[CABIN_TEMPERATURE].reason) == (
        "failed", f"rejected by the vehicle: {said}")
    # The words are about the whole message: the charge limit's item carries them too.
    assert items[CHARGE_LIMIT].reason == f"rejected by the vehicle: {said}"
    assert stored == {CABIN_TEMPERATURE: REJECTED_IN_REGION, CHARGE_LIMIT: REJECTED_IN_REGION}
    # The fleet's reconciliation summary counts the vehicle's own words, read from its store.
    with regional.read_session() as session:
        summary = reconciliation_summary(session, "acme", among=[eu.vin])
    assert summary.failure_reasons == {f"rejected by the vehicle: {said}": 2}
    # Setting the item again writes its item back without the words; removing the items
    # removes them.
    _set(regional, eu, EU_WANTED + 1)
    assert traces(state_url(regional), (), texts) == []
    _set(regional, eu, None)
    with regional.session() as session:
        set_desired(session, eu.vin, {CHARGE_LIMIT: None}, tenant="acme", if_match=None,
                    actor="test")
    assert traces(stores["EU"], (), texts) == []


def test_an_upgrade_moves_rejection_reasons_stored_before_to_their_region_store(
    regional: Database, cars: dict[str, VehicleCredentials], stores: dict[str, str]
) -> None:
    eu = cars["eu1"]
    _set(regional, eu, EU_WANTED)
    said = f"rejected by the vehicle: {EU_WANTED} too warm"
    with regional.session() as session:  # as written before reasons were kept per region
        session.execute(sa.update(DESIRED).where(DESIRED.c.vin == eu.vin).values(
            status="failed", reason=said))
    regional.upgrade()
    assert traces(state_url(regional), (), ("too warm",)) == []
    assert traces(stores["EU"], (), ("too warm",)) == ["twin_desired_reasons.reason"]
    with regional.read_session() as session:
        [item] = get_twin(session, eu.vin, tenant="acme").items
    assert item.reason == said
