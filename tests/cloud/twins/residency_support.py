"""Helpers of the residency tests: two vehicles (EU, US), their telemetry, and a search of
every cell of a database for a value that must not be there."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from drivetrain.cloud.fleet import VehicleCredentials
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import RawMessage
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.wire import samples_table, seal_telemetry

CLOUD_KEY = SigningKey.from_seed(b"r" * 32)
LATITUDE = "Vehicle.CurrentLocation.Latitude"
LONGITUDE = "Vehicle.CurrentLocation.Longitude"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
CABIN_TEMPERATURE = "Vehicle.Cabin.HVAC.Station.Row1.Driver.Temperature"
# Munich and New York; as stored after the regions' minimisation (EU 2, US 3 decimals).
EU_POSITION = (48.137154, 11.575382)
EU_STORED = (48.14, 11.58)
US_POSITION = (40.712776, -74.005974)
US_STORED = (40.713, -74.006)


def telemetry(
    car: VehicleCredentials, values: dict[str, float], ts_ns: int | None = None
) -> RawMessage:
    paths = sorted(values)
    now = datetime.now(UTC).timestamp()
    table = samples_table(
        paths,
        list(range(len(paths))),
        [int(now * 1e9) if ts_ns is None else ts_ns] * len(paths),
        [values[p] for p in paths],
        None,
    )
    payload = seal_telemetry(car.vin, table, key=car.signing_key, seq=1)
    return RawMessage(vehicle_topic(car.vin, "telemetry"), payload)


def traces(url: str, numbers: tuple[float, ...], texts: tuple[str, ...]) -> list[str]:
    """Every cell of every table of the database at ``url`` (every text and number column)
    holding one of ``numbers`` or containing one of ``texts``: 'table.column'."""
    found = []
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            metadata = sa.MetaData()
            metadata.reflect(connection)
            for table in metadata.sorted_tables:
                for row in connection.execute(sa.select(table)):
                    for column, value in row._mapping.items():
                        if matches(value, numbers, texts):
                            found.append(f"{table.name}.{column}")
    finally:
        engine.dispose()
    return found


def matches(value: Any, numbers: tuple[float, ...], texts: tuple[str, ...]) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float, Decimal)):
        return any(abs(float(value) - n) < 1e-9 for n in numbers)
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return isinstance(value, str) and any(t in value for t in texts)


def state_url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)
