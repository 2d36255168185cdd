"""Helpers for the twins tests: a small registered fleet and a minimal fake vehicle."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

from drivetrain.cloud.fleet import VehicleCredentials, provision_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.twins import apply_reported, record_acks
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import SignatureError, WireFormatError
from drivetrain.core.transport import STATE_DESIRED, Message, Subscription, Transport, vehicle_topic
from drivetrain.core.wire import Ack, DesiredStateDelta, MessageKind, parse

CLOUD_KEY = SigningKey.from_seed(b"twins-cloud-key-for-tests-000000")
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
CABIN_TEMP = "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"


@dataclass(frozen=True)
class Fleet:
    """Registered vehicles: ``acme`` has EU and US cars, ``globex`` one EU car."""

    acme: tuple[VehicleCredentials, ...]
    globex: tuple[VehicleCredentials, ...]

    @property
    def acme_vins(self) -> list[str]:
        return [c.vin for c in self.acme]

    @property
    def globex_vin(self) -> str:
        return self.globex[0].vin


def provision(
    database: Database, tenant: str, regions: list[str], *, seed: int, model: str = "compact-bev"
) -> tuple[VehicleCredentials, ...]:
    """Register one vehicle per region entry in ``tenant``; returns their credentials."""
    rng = random.Random(seed)
    made = []
    with database.session() as session:
        for region in regions:
            _, credentials = provision_vehicle(
                session, tenant=tenant, model=model, region=region,
                cloud_key=CLOUD_KEY.verify_key, actor="test", rng=rng,
                signing_key=SigningKey.from_seed(rng.randbytes(32)),
            )
            made.append(credentials)
    return tuple(made)


class FakeVehicle:
    """A minimal vehicle for reconciliation tests, standing in for the edge agent.

    It listens on its ``state/desired`` topic, verifies each message with the cloud public key
    from its credentials (refusing and counting anything else), applies a delta only if its
    version is newer than the last applied, reports the applied values through
    ``apply_reported`` and acknowledges through ``record_acks`` — or rejects every delta when
    ``reject`` is set.
    """

    def __init__(
        self, credentials: VehicleCredentials, transport: Transport, database: Database,
        *, reject: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.transport = transport
        self.database = database
        self.reject = reject
        self.state: dict[str, object] = {}
        self.applied_version = 0
        self.received: list[DesiredStateDelta] = []
        self.refused = 0
        self._subscription: Subscription | None = None

    @property
    def vin(self) -> str:
        return self.credentials.vin

    def connect(self) -> None:
        self._subscription = self.transport.subscribe(
            vehicle_topic(self.vin, STATE_DESIRED), self._on_message
        )

    def disconnect(self) -> None:
        if self._subscription is not None:
            self._subscription.unsubscribe()
            self._subscription = None

    def _on_message(self, message: Message) -> None:
        try:
            envelope = parse(message.payload).verify(self.credentials.cloud_key)
            if envelope.kind != MessageKind.DESIRED_STATE or envelope.vehicle_id != self.vin:
                raise WireFormatError("not a desired-state message for this vehicle")
            delta = DesiredStateDelta.from_dict(envelope.json_body())
        except (WireFormatError, SignatureError):
            self.refused += 1
            return
        self.received.append(delta)
        if delta.version <= self.applied_version:
            return
        now = datetime.now(UTC)
        with self.database.session() as session:
            if self.reject is not None:
                ack = Ack(envelope.message_id, "desired_state", "rejected", self.reject, delta.version)
                record_acks(session, self.vin, [ack])
                return
            self.state.update(delta.values)
            self.applied_version = delta.version
            if delta.values:
                apply_reported(session, {self.vin: {p: (v, now) for p, v in delta.values.items()}})
            ack = Ack(envelope.message_id, "desired_state", "applied", "", delta.version)
            record_acks(session, self.vin, [ack])
