"""Over the real Mosquitto broker: a vehicle offline while its campaign is delivered gets it
when it connects (retained, signed), installs it and acknowledges it; and status changes made
in one process reach the subscribers of another through the broker."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from campaign_kit import definition
from rig import CLOUD_KEY

from drivetrain.cloud.campaigns import (
    CampaignRunner,
    approve_campaign,
    campaign_vehicles,
    create_campaign,
)
from drivetrain.cloud.commands import Dispatcher, Payload, create_job
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.bus import BusBridge, StatusEvent, StatusSubscription, status_bus
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, RawMessage
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.twins import get_twin, hub_for, set_desired
from drivetrain.core.transport import CAMPAIGNS, Message, vehicle_topic
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import unique_name
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.identity import VehicleIdentity

pytestmark = pytest.mark.slow
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"


@pytest.fixture
def car(database: Database, mqtt_url: str) -> Iterator[VehicleIdentity]:
    """One registered car of tenant acme (a random VIN: the broker is shared); its campaign
    slot is cleared afterwards."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        _vehicle, credentials = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="EU",
            cloud_key=CLOUD_KEY.verify_key, actor="test", rng=random.Random(),
        )
    identity = VehicleIdentity.from_dict(credentials.to_dict())
    yield identity
    with MqttTransport(mqtt_url, client_id=unique_name("cleanup")) as client:
        client.publish(vehicle_topic(identity.vin, CAMPAIGNS), b"", retain=True)


def test_a_vehicle_offline_during_delivery_gets_the_campaign_on_reconnect(
    database: Database, mqtt_url: str, car: VehicleIdentity
) -> None:
    uplink: list[Message] = []
    with MqttTransport(mqtt_url, client_id=unique_name("cloud")) as link:
        link.subscribe(vehicle_topic(car.vin, "ack"), uplink.append, qos=1)
        with database.session() as session:
            create_campaign(session, definition(targeting={"vins": [car.vin]}), tenant="acme",
                            actor="alice")
            approve_campaign(session, "harsh-brake", tenant="acme", actor="bob")
        CampaignRunner(database).run_once()
        dispatcher = Dispatcher(database, link, CLOUD_KEY)
        assert dispatcher.run_once().sent == 1  # the car is not connected
        states = _states(database)
        assert states == {car.vin: "delivered"}

        with MqttTransport(mqtt_url, client_id=unique_name("car")) as car_link:
            agent = EdgeAgent(car, car_link, MemoryBuffer())
            agent.start()  # the retained campaign arrives on subscribing
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not uplink:
                agent.tick()
                time.sleep(0.1)
            assert [c.id for c in agent.engine.campaigns] == ["harsh-brake"]
            agent.stop()
        assert uplink, "no acknowledgement came over the broker"
        pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(),
                                  platform_key=CLOUD_KEY)
        pipeline.process([RawMessage(m.topic, m.payload) for m in uplink])
        dispatcher.run_once()
    assert _states(database) == {car.vin: "active"}


def _states(database: Database) -> dict[str, str]:
    with database.session() as session:
        return {v.vin: v.state for v in campaign_vehicles(session, "harsh-brake",
                                                          tenant="acme")}


def test_status_changes_of_one_process_reach_the_subscribers_of_another(
    database_url: str, database: Database, mqtt_url: str, car: VehicleIdentity
) -> None:
    """Two API processes: two engines on one database, each with its bus bridged through the
    broker (a topic root of this test alone)."""
    root = f"test/{unique_name('status')}"
    other = Database(database_url)  # the second process's engine
    try:
        with MqttTransport(mqtt_url, client_id=unique_name("a")) as a_link, \
                MqttTransport(mqtt_url, client_id=unique_name("b")) as b_link:
            hub_for(database.engine)
            BusBridge(status_bus(database.engine), a_link, root=root).start()
            b_bridge = BusBridge(status_bus(other.engine), b_link, root=root).start()
            jobs = status_bus(other.engine).subscribe(tenant="acme", domains=("jobs",))
            twins = hub_for(other.engine).subscribe(tenant="acme", kinds=("desired",))
            time.sleep(0.5)  # both subscriptions in place at the broker
            with database.session() as session:
                job = create_job(session, tenant="acme", actor="op",
                                 payload=Payload.command("flash_lights"), vins=[car.vin])
            with database.session() as session:
                version = get_twin(session, car.vin, tenant="acme").version
                set_desired(session, car.vin, {CHARGE_LIMIT: 80}, tenant="acme",
                            if_match=version, actor="op")
            seen: list[StatusEvent] = _collect(jobs)
            changes = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not changes:
                changes = twins.get_batch(0.2)
            assert [(e.kind, e.subject) for e in seen] == [("created", job.job_id)]
            assert seen[0].origin == status_bus(database.engine).origin
            assert [(c.kind, c.vin, c.paths) for c in changes] == [
                ("desired", car.vin, (CHARGE_LIMIT,))]
            assert b_bridge.received >= 2 and b_bridge.dropped == 0
    finally:
        other.dispose()


def _collect(subscription: StatusSubscription) -> list[StatusEvent]:
    """The first events to arrive (waiting up to 10 s)."""
    deadline = time.monotonic() + 10
    got: list[StatusEvent] = []
    while time.monotonic() < deadline and not got:
        got = subscription.get_batch(0.2)
    return got


def test_an_unreadable_status_message_on_the_broker_is_dropped_not_fatal(
    database: Database, mqtt_url: str
) -> None:
    root = f"test/{unique_name('status')}"
    with MqttTransport(mqtt_url, client_id=unique_name("a")) as link:
        bridge = BusBridge(status_bus(database.engine), link, root=root).start()
        time.sleep(0.3)
        link.publish(f"{root}/jobs", b'{"events": [{"domain": 1}]}')
        link.publish(f"{root}/jobs", b"\xff" * 10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and bridge.dropped < 2:
            time.sleep(0.05)
        assert bridge.dropped == 2 and bridge.received == 0
        with database.session() as session:  # the process carries on: events still flow
            create_tenant(session, "acme", actor="test")
        bridge.stop()
