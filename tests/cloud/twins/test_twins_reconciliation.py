"""Closing the loop: signed retained deltas reach vehicles (also after reconnecting), reported
values converge them, rejections and expiry fail them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from twins_support import CABIN_TEMP, CHARGE_LIMIT, CLOUD_KEY, FakeVehicle, Fleet

from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import (
    Reconciler,
    get_delta,
    get_twin,
    reconciliation_summary,
    set_desired,
    set_desired_by_query,
)
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import SignatureError
from drivetrain.core.transport import STATE_DESIRED, InProcessTransport, Message, vehicle_topic
from drivetrain.core.wire import DesiredStateDelta, MessageKind, parse


@pytest.fixture
def bus() -> Iterator[InProcessTransport]:
    with InProcessTransport() as transport:
        yield transport


def _round(reconciler: Reconciler, bus: InProcessTransport, now: datetime | None = None) -> None:
    reconciler.run_once(now)
    bus.drain(10)


def _set(database: Database, vin: str, values: dict[str, object], **kwargs: object) -> None:
    with database.session() as session:
        version = get_twin(session, vin, tenant="acme").version
        set_desired(session, vin, values, tenant="acme", if_match=version, actor="op", **kwargs)  # type: ignore[arg-type]


def _items(database: Database, vin: str) -> dict[str, object]:
    with database.session() as session:
        return {i.path: i for i in get_twin(session, vin, tenant="acme").items}


def test_a_desired_change_reaches_the_vehicle_signed_and_converges(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicle = FakeVehicle(fleet.acme[0], bus, database)
    vehicle.connect()
    reconciler = Reconciler(database, bus, CLOUD_KEY)
    _set(database, vehicle.vin, {CHARGE_LIMIT: 80})
    _round(reconciler, bus)
    assert vehicle.refused == 0 and vehicle.state == {CHARGE_LIMIT: 80}
    item = _items(database, vehicle.vin)[CHARGE_LIMIT]
    assert item.status == "converged" and item.time_to_converge_s is not None  # type: ignore[attr-defined]
    with database.session() as session:
        twin = get_twin(session, vehicle.vin, tenant="acme")
        assert get_delta(session, vehicle.vin, tenant="acme").values == {}
    assert (twin.sent_version, twin.acked_version) == (1, 1)


def test_the_message_verifies_only_with_the_cloud_key_and_only_unaltered(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    received: list[Message] = []
    bus.subscribe(vehicle_topic(fleet.acme_vins[0], STATE_DESIRED), received.append)
    _set(database, fleet.acme_vins[0], {CHARGE_LIMIT: 80})
    _round(Reconciler(database, bus, CLOUD_KEY), bus)
    payload = received[0].payload
    envelope = parse(payload).verify(CLOUD_KEY.verify_key)
    assert envelope.kind == MessageKind.DESIRED_STATE and envelope.vehicle_id == fleet.acme_vins[0]
    assert DesiredStateDelta.from_dict(envelope.json_body()).values == {CHARGE_LIMIT: 80}
    tampered = payload.replace(b'"values":{"Vehicle', b'"values":{"Vehiclf')
    with pytest.raises(SignatureError):
        parse(tampered).verify(CLOUD_KEY.verify_key)


def test_a_vehicle_ignores_a_delta_signed_by_anyone_but_the_cloud(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicle = FakeVehicle(fleet.acme[0], bus, database)
    vehicle.connect()
    forger = SigningKey.generate()
    _set(database, vehicle.vin, {CHARGE_LIMIT: 20})
    _round(Reconciler(database, bus, forger), bus)
    assert vehicle.refused == 1 and vehicle.state == {}
    assert _items(database, vehicle.vin)[CHARGE_LIMIT].status == "pending"  # type: ignore[attr-defined]


def test_vehicle_offline_during_a_change_gets_the_latest_delta_on_reconnect(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicle = FakeVehicle(fleet.acme[0], bus, database)
    reconciler = Reconciler(database, bus, CLOUD_KEY)
    vehicle.connect()
    vehicle.disconnect()  # goes offline
    _set(database, vehicle.vin, {CHARGE_LIMIT: 70})
    _round(reconciler, bus)
    _set(database, vehicle.vin, {CABIN_TEMP: 21.5})  # a second change while still offline
    _round(reconciler, bus)
    assert vehicle.received == []
    assert all(i.status == "pending" for i in _items(database, vehicle.vin).values())  # type: ignore[attr-defined]
    vehicle.connect()  # back online: the retained delta arrives at once
    bus.drain(10)
    assert [d.version for d in vehicle.received] == [2]
    assert vehicle.state == {CHARGE_LIMIT: 70, CABIN_TEMP: 21.5}
    assert all(i.status == "converged" for i in _items(database, vehicle.vin).values())  # type: ignore[attr-defined]


def test_reconnecting_after_applying_changes_nothing(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicle = FakeVehicle(fleet.acme[0], bus, database)
    reconciler = Reconciler(database, bus, CLOUD_KEY)
    vehicle.connect()
    _set(database, vehicle.vin, {CHARGE_LIMIT: 70})
    _round(reconciler, bus)
    vehicle.disconnect()
    vehicle.connect()
    bus.drain(10)
    assert [d.version for d in vehicle.received] == [1, 1] and vehicle.applied_version == 1
    with database.session() as session:
        assert get_twin(session, vehicle.vin, tenant="acme").acked_version == 1


def test_a_rejecting_vehicle_fails_the_items_with_its_reason(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicle = FakeVehicle(fleet.acme[0], bus, database, reject="charge limit is locked by the owner")
    vehicle.connect()
    _set(database, vehicle.vin, {CHARGE_LIMIT: 55})
    _round(Reconciler(database, bus, CLOUD_KEY), bus)
    item = _items(database, vehicle.vin)[CHARGE_LIMIT]
    assert item.status == "failed"  # type: ignore[attr-defined]
    assert item.reason == "rejected by the vehicle: charge limit is locked by the owner"  # type: ignore[attr-defined]


def test_stale_desired_values_expire_and_are_no_longer_sent(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    received: list[Message] = []
    vin = fleet.acme_vins[0]
    bus.subscribe(vehicle_topic(vin, STATE_DESIRED), received.append)
    reconciler = Reconciler(database, bus, CLOUD_KEY)
    _set(database, vin, {CHARGE_LIMIT: 60}, ttl_s=60)
    _round(reconciler, bus)
    later = datetime.now(UTC) + timedelta(seconds=61)
    report = reconciler.run_once(later)
    bus.drain(10)
    assert report.expired == 1 and report.sent == 1
    last = DesiredStateDelta.from_dict(parse(received[-1].payload).json_body())
    assert last.values == {} and last.version == 1
    item = _items(database, vin)[CHARGE_LIMIT]
    assert item.status == "failed" and "expired" in item.reason  # type: ignore[attr-defined]


def test_the_background_reconciler_converges_a_group_selected_by_query(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vehicles = [FakeVehicle(c, bus, database) for c in fleet.acme]
    for vehicle in vehicles:
        vehicle.connect()
    reconciler = Reconciler(database, bus, CLOUD_KEY, poll_interval_s=0.2)
    reconciler.start()
    try:
        with database.session() as session:
            result = set_desired_by_query(
                session, 'region == "EU"', {CHARGE_LIMIT: 85}, tenant="acme", actor="op"
            )
        assert result.matched == 3
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with database.session() as session:
                summary = reconciliation_summary(session, "acme", 'region == "EU"', path=CHARGE_LIMIT)
            if summary.converged == 3:
                break
            time.sleep(0.05)
    finally:
        reconciler.stop()
    assert (summary.converged, summary.pending, summary.failed) == (3, 0, 0)
    assert summary.time_to_converge_max_s is not None and summary.time_to_converge_max_s < 20
    assert [v.state for v in vehicles[3:]] == [{}, {}]  # the US cars were not selected


def test_without_a_vehicle_link_pending_items_say_not_delivered_until_a_link_delivers_them(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vin = fleet.acme_vins[0]
    _set(database, vin, {CHARGE_LIMIT: 80})
    report = Reconciler(database, None, CLOUD_KEY).run_once()
    assert (report.sent, report.not_delivered) == (0, 1)
    assert _items(database, vin)[CHARGE_LIMIT].reason == "not delivered: no vehicle link"  # type: ignore[attr-defined]
    with database.session() as session:
        summary = reconciliation_summary(session, "acme", path=CHARGE_LIMIT)
    assert summary.pending == 1
    assert summary.pending_reasons == {"not delivered: no vehicle link": 1}
    # Telling twice changes nothing; a process with a link delivers and clears the reason.
    assert Reconciler(database, None, CLOUD_KEY).run_once().not_delivered == 0
    vehicle = FakeVehicle(fleet.acme[0], bus, database)
    vehicle.connect()
    _round(Reconciler(database, bus, CLOUD_KEY), bus)
    item = _items(database, vin)[CHARGE_LIMIT]
    assert item.status == "converged" and item.reason is None  # type: ignore[attr-defined]
    with database.session() as session:
        assert reconciliation_summary(session, "acme", path=CHARGE_LIMIT).pending_reasons == {}


def test_a_delivered_but_unconverged_item_no_longer_says_no_link(
    database: Database, fleet: Fleet, bus: InProcessTransport
) -> None:
    vin = fleet.acme_vins[1]  # no vehicle listens: delivered (retained), not yet converged
    _set(database, vin, {CHARGE_LIMIT: 70})
    Reconciler(database, None, CLOUD_KEY).run_once()
    _round(Reconciler(database, bus, CLOUD_KEY), bus)
    item = _items(database, vin)[CHARGE_LIMIT]
    assert item.status == "pending" and item.reason is None  # type: ignore[attr-defined]
