"""Shared helpers of the ingestion tests: constants, the fleet record, payload builders."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.ingest import RawMessage
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import samples_table, seal_telemetry

CLOUD_KEY = SigningKey.from_seed(b"k" * 32)
#: The receiver's clock in these tests (fixed, so timestamps are exact).
NOW_NS = 1_795_000_000 * 1_000_000_000  # 2026-11-18T...Z
SECOND = 1_000_000_000

SPEED = "Vehicle.Speed"  # float, driving_behaviour
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"  # float [0,100], technical
LATITUDE = "Vehicle.CurrentLocation.Latitude"  # double [-90,90], location


@dataclass(frozen=True)
class Fleet:
    """Provisioned vehicles by name; ``creds[name].vin`` etc."""

    creds: dict[str, VehicleCredentials]

    def vin(self, name: str) -> str:
        return self.creds[name].vin

    def key(self, name: str) -> SigningKey:
        return self.creds[name].signing_key


def telemetry(
    vin: str,
    key: SigningKey,
    samples: Sequence[tuple[str, int, float | None] | tuple[str, int, float | None, str | None]],
    *,
    batch_id: str | None = None,
    seq: int = 1,
) -> RawMessage:
    """A signed telemetry message of ``(path, ts_ns, value[, text])`` samples."""
    paths = sorted({s[0] for s in samples})
    index = [paths.index(s[0]) for s in samples]
    values = [float("nan") if s[2] is None else s[2] for s in samples]
    texts = [s[3] if len(s) > 3 else None for s in samples]
    any_text = any(t is not None for t in texts) or any(s[2] is None for s in samples)
    table = samples_table(
        paths, index, [s[1] for s in samples], values, texts if any_text else None
    )
    payload = seal_telemetry(vin, table, key=key, seq=seq, message_id=batch_id)
    return RawMessage(vehicle_topic(vin, "telemetry"), payload)


def wall_clock_ns() -> int:
    return time.time_ns()
