"""Over the real Mosquitto broker: a car away while its consent changed and the region's policy
was pushed — both deliveries ended without it, and another command took its retained slot —
reconnects, reports what it holds (``privacy.sync``), and ends with the current consent and
policy; a car that is up to date is sent nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from rig import CLOUD_KEY

from drivetrain.cloud.commands import Dispatcher, cancel_job, list_jobs, send_command
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, RawMessage
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.privacy.flows import change_consent
from drivetrain.cloud.privacy.policy_push import push_policy
from drivetrain.core.privacy_policy import MinimisationPolicy
from drivetrain.core.transport import COMMANDS, Message, MqttTransport, vehicle_topic
from drivetrain.core.transport.testing import unique_name
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.identity import VehicleIdentity

pytestmark = pytest.mark.slow
OPERATOR = MinimisationPolicy.from_dict(
    {"format": "drivetrain.privacy-policy", "version": 1,
     "regions": {"EU": {"default_off": ["cabin"],
                        "precision": [{"signals": ["Vehicle.CurrentLocation.*"],
                                       "decimals": 1}]}}},
    "operator.json",
)  # fmt: skip


@pytest.fixture
def car(database: Database, mqtt_url: str) -> Iterator[VehicleIdentity]:
    """One registered EU car of tenant acme (a random VIN: the broker is shared); its
    commands slot is cleared afterwards."""
    with database.session() as session:
        create_tenant(session, "acme", actor="test")
        _vehicle, credentials = provision_vehicle(
            session, tenant="acme", model="compact-bev", region="EU",
            cloud_key=CLOUD_KEY.verify_key, actor="test", rng=random.Random(),
        )  # fmt: skip
    identity = VehicleIdentity.from_dict(credentials.to_dict())
    yield identity
    with MqttTransport(mqtt_url, client_id=unique_name("cleanup")) as client:
        client.publish(vehicle_topic(identity.vin, COMMANDS), b"", retain=True)


def _jobs(database: Database) -> list[str]:
    with database.session() as session:
        return [j.name for j in list_jobs(session, tenant="acme")]


class Cloud:
    """The cloud's side over the broker: the car's uplink, ingestion and the dispatcher."""

    def __init__(self, database: Database, link: MqttTransport, vin: str) -> None:
        self.uplink: list[Message] = []
        link.subscribe(vehicle_topic(vin, "ack"), self.uplink.append, qos=1)
        link.subscribe(vehicle_topic(vin, "events"), self.uplink.append, qos=1)
        self.dispatcher = Dispatcher(database, link, CLOUD_KEY)
        self.pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(),
                                       platform_key=CLOUD_KEY)

    def exchange(self, agent: EdgeAgent) -> None:
        """The car ticks and sends; the cloud ingests what came and runs a dispatcher round."""
        agent.tick()
        agent.flush()
        time.sleep(0.1)
        messages, self.uplink[:] = list(self.uplink), []
        if messages:
            self.pipeline.process([RawMessage(m.topic, m.payload) for m in messages])
        self.dispatcher.run_once()


def test_a_car_that_missed_its_consent_and_policy_gets_both_when_it_reconnects(
    database: Database, mqtt_url: str, car: VehicleIdentity
) -> None:
    with MqttTransport(mqtt_url, client_id=unique_name("cloud")) as link:
        cloud = Cloud(database, link, car.vin)
        dispatcher = cloud.dispatcher
        with database.session() as session:  # the car is away
            [push] = push_policy(session, OPERATOR, tenant="acme", actor="op", regions=["EU"])
            change = change_consent(
                session,
                vin=car.vin,
                tenant="acme",
                categories=["technical", "location"],
                source="driver-app",
                actor="app",
            )
        dispatcher.run_once()
        with database.session() as session:  # both deliveries end without the car ...
            for job_id in (push.job_id, change.job_id):
                cancel_job(session, job_id, tenant="acme", actor="test", reason="car away")
        dispatcher.run_once()
        with database.session() as session:  # ... and another command takes its slot
            send_command(session, car.vin, "flash_lights", {"times": 2}, tenant="acme", actor="app")
        assert dispatcher.run_once().sent == 1

        with MqttTransport(mqtt_url, client_id=unique_name("car")) as car_link:
            agent = EdgeAgent(car, car_link, MemoryBuffer())
            agent.start()  # the retained flash_lights arrives on subscribing
            deadline = time.monotonic() + 20
            downlink = agent.downlink
            while time.monotonic() < deadline and not (
                downlink.consent.version == change.version
                and downlink.policy_record.version == push.version
            ):
                cloud.exchange(agent)
            agent.stop()
    assert downlink.consent.categories == {"technical", "location"}
    assert downlink.consent.version == change.version
    assert downlink.policy_record.version == push.version
    assert agent.minimisation.default_off == {"cabin"}
    # one resend of each, by the cloud, to this car
    assert sorted(_jobs(database)).count("privacy.collection") == 2
    assert sorted(_jobs(database)).count("privacy.policy") == 2


def test_a_car_that_is_up_to_date_is_sent_nothing(
    database: Database, mqtt_url: str, car: VehicleIdentity
) -> None:
    with MqttTransport(mqtt_url, client_id=unique_name("cloud")) as link:
        cloud = Cloud(database, link, car.vin)
        dispatcher = cloud.dispatcher
        with MqttTransport(mqtt_url, client_id=unique_name("car")) as car_link:
            agent = EdgeAgent(car, car_link, MemoryBuffer())
            agent.start()
            with database.session() as session:
                change = change_consent(
                    session,
                    vin=car.vin,
                    tenant="acme",
                    categories=["technical"],
                    source="driver-app",
                    actor="app",
                )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and agent.downlink.consent.version != change.version:
                dispatcher.run_once()
                agent.tick()
                agent.flush()
                time.sleep(0.1)
            assert agent.downlink.consent.version == change.version
            agent.stop()
            cloud.uplink.clear()  # the first start's report may predate the consent's arrival
            agent.start()  # a restart: reports again, holding the current consent
            for _ in range(10):
                cloud.exchange(agent)
            agent.stop()
    assert _jobs(database) == ["privacy.collection"]
