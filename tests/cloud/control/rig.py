"""A small connected fleet for the dispatcher's tests: real edge agents on the in-process bus,
the real ingest pipeline turning their acks into stored events, and the dispatcher.

``Rig.cycle()`` plays one exchange: a dispatcher round (publish), the agents tick (verify,
act, acknowledge), ingestion stores what they sent, and a second round applies the acks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from drivetrain.cloud.commands import Dispatcher, DispatcherStats
from drivetrain.cloud.fleet import provision_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, RawMessage
from drivetrain.cloud.ingest.sinks import TwinsReportedState
from drivetrain.cloud.privacy import set_consent
from drivetrain.cloud.privacy.flows import change_consents
from drivetrain.cloud.twins import set_ecu
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import BadInputError
from drivetrain.core.transport import InProcessTransport, Message
from drivetrain.core.vss import PRIVACY_CATEGORIES, builtin_catalog
from drivetrain.edge.actuator import InMemoryActuator
from drivetrain.edge.agent import EdgeAgent
from drivetrain.edge.buffer import MemoryBuffer
from drivetrain.edge.identity import VehicleIdentity

CLOUD_KEY = SigningKey.from_seed(b"drivetrain-test-cloud-dispatch01")


def _refuse(args: Mapping[str, Any]) -> str:
    raise BadInputError(f"door locked: {args.get('why', 'no reason')}")


COMMANDS = {
    "flash_lights": lambda args: f"flashed {args.get('times', 1)} times",
    "refuse": _refuse,
}


class Rig:
    """Tenants ``acme`` (vehicles by ``regions``) and ``globex`` (one EU vehicle)."""

    def __init__(
        self, database: Database, regions: Sequence[str] = ("EU", "EU", "US"), *,
        seed: int = 1, link: bool = True, bms: Sequence[str] | None = None,
    ) -> None:
        self.database = database
        self.bus = InProcessTransport()
        self.catalog = builtin_catalog()
        rng = random.Random(seed)
        with database.session() as session:
            create_tenant(session, "acme", actor="test")
            create_tenant(session, "globex", actor="test")
            self.vins = self._provision(session, "acme", regions, rng)
            self.other_vins = self._provision(session, "globex", ["EU"], rng)
            # their drivers agree to every category; with a link the consent travels to the
            # cars (settled below, before the test starts), else it stays in the cloud
            for tenant, vins in (("acme", self.vins), ("globex", self.other_vins)):
                if link:
                    change_consents(session, dict.fromkeys(vins, PRIVACY_CATEGORIES),
                                    tenant=tenant, source="contract", actor="test")
                else:
                    for vin in vins:
                        set_consent(session, vin=vin, tenant=tenant,
                                    categories=PRIVACY_CATEGORIES, source="contract",
                                    actor="test")
            for i, vin in enumerate(self.vins):
                if bms is not None:
                    set_ecu(session, vin, "BMS", tenant="acme", hardware_id=None, software_version=bms[i],
                            actor="test")
        self.uplink: list[Message] = []
        self.bus.subscribe("dt/v1/+/ack", self.uplink.append)
        self.bus.subscribe("dt/v1/+/events", self.uplink.append)
        self.bus.subscribe("dt/v1/+/telemetry", self.uplink.append)
        self.pipeline = IngestPipeline(database, MemoryLake(), TwinsReportedState(),
                                       platform_key=CLOUD_KEY)
        self.dispatcher = Dispatcher(database, self.bus if link else None, CLOUD_KEY)
        self.online = {vin: True for vin in self.agents}
        for agent in self.agents.values():
            agent.start()
        if link:  # the consents delivered, acknowledged and their slots cleared an hour
            # before any moment a test plays (the cars' clocks and memories start there) ...
            at = utc(-3600)
            at_ns = int(at.timestamp() * 1e9)
            self.dispatcher.run_once(at)
            self.vehicles_act(at_ns)
            self.dispatcher.run_once(at)
            self.vehicles_act(at_ns)
            # ... so the tests count only their own traffic
            self.dispatcher.stats = DispatcherStats()
            for agent in self.agents.values():
                agent.guard.accepted.clear()
                agent.guard.refused.clear()

    def _provision(
        self, session: Any, tenant: str, regions: Sequence[str], rng: random.Random
    ) -> list[str]:
        vins = []
        if not hasattr(self, "agents"):
            self.agents: dict[str, EdgeAgent] = {}
            self.actuators: dict[str, InMemoryActuator] = {}
        for region in regions:
            _vehicle, credentials = provision_vehicle(
                session, tenant=tenant, model="compact-bev", region=region,
                cloud_key=CLOUD_KEY.verify_key, actor="test", rng=rng,
            )
            identity = VehicleIdentity.from_dict(credentials.to_dict())
            actuator = InMemoryActuator(self.catalog, commands=COMMANDS)
            self.actuators[identity.vin] = actuator
            self.agents[identity.vin] = EdgeAgent(identity, self.bus, MemoryBuffer(),
                                                  actuator=actuator)
            vins.append(identity.vin)
        return vins

    def go_offline(self, vin: str) -> None:
        self.agents[vin].stop()
        self.online[vin] = False

    def come_online(self, vin: str) -> None:
        self.agents[vin].start()
        self.online[vin] = True

    def vehicles_act(self, now_ns: int | None = None) -> None:
        """Deliver what the bus holds, let every online agent tick, store what they sent."""
        self.bus.drain(10)
        now_ns = now_ns or time.time_ns()
        for vin, agent in self.agents.items():
            if self.online[vin]:
                agent.tick(now_ns)
        self.bus.drain(10)
        self.ingest()

    def ingest(self) -> None:
        messages, self.uplink[:] = list(self.uplink), []
        if messages:
            self.pipeline.process([RawMessage(m.topic, m.payload) for m in messages])

    def cycle(self, now: datetime | None = None) -> None:
        self.dispatcher.run_once(now)
        self.vehicles_act()
        self.dispatcher.run_once(now)

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.bus.close()


def utc(offset_s: float = 0.0) -> datetime:
    return datetime.fromtimestamp(time.time() + offset_s, UTC)
