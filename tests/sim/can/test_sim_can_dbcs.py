"""The simulated models' DBCs and DBC→VSS maps: strict loading, realistic content, coverage."""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest

from drivetrain.core.can import dump_dbc, e2e_protection, load_dbc, load_signal_map
from drivetrain.core.errors import NotFoundError
from drivetrain.core.vss import builtin_catalog
from drivetrain.sim.can import MAPPED_VSS_PATHS, VEHICLE_MODELS, VehicleCan, load_vehicle_can
from drivetrain.sim.can.vehicles import dbc_path, map_path
from drivetrain.sim.physics.vehicle_models import VEHICLE_MODELS as VEHICLE_PHYSICS

CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
# what the vehicle physics produces, by the list (each model carries them all)
PHYSICS_PATHS = [
    "Vehicle.Speed",
    "Vehicle.TraveledDistance",
    "Vehicle.Acceleration.Longitudinal",
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
    "Vehicle.Powertrain.TractionBattery.StateOfHealth",
    "Vehicle.Powertrain.TractionBattery.CurrentVoltage",
    "Vehicle.Powertrain.TractionBattery.CurrentCurrent",
    "Vehicle.Powertrain.TractionBattery.CurrentPower",
    "Vehicle.Powertrain.TractionBattery.Temperature.Average",
    "Vehicle.Powertrain.TractionBattery.Temperature.Min",
    "Vehicle.Powertrain.TractionBattery.Temperature.Max",
    "Vehicle.Powertrain.TractionBattery.CellVoltage.Min",
    "Vehicle.Powertrain.TractionBattery.CellVoltage.Max",
    "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit",
    "Vehicle.Powertrain.TractionBattery.Charging.MaxPower",
    "Vehicle.Powertrain.Transmission.CurrentGear",
    "Vehicle.Powertrain.Transmission.SelectedGear",
    "Vehicle.Chassis.Brake.PedalPosition",
    "Vehicle.Chassis.Axle.Row1.Wheel.Left.Brake.PadWear",
    *(
        f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.{q}"
        for r in (1, 2)
        for s in ("Left", "Right")
        for q in ("Pressure", "AirTemperature")
    ),
    "Vehicle.Cabin.HVAC.AmbientAirTemperature",
    "Vehicle.Exterior.AirTemperature",
    "Vehicle.Cabin.HVAC.IsAirConditioningActive",
    "Vehicle.LowVoltageBattery.CurrentVoltage",
    "Vehicle.LowVoltageBattery.CurrentCurrent",
    "Vehicle.CurrentLocation.Latitude",
    "Vehicle.CurrentLocation.Longitude",
    "Vehicle.CurrentLocation.Heading",
    "Vehicle.CurrentLocation.Altitude",
    "Vehicle.Body.Lights.Beam.Low.IsOn",
    "Vehicle.Cabin.Door.Row1.DriverSide.IsOpen",
]


@pytest.mark.parametrize("model", VEHICLE_MODELS)
def test_dbc_loads_with_cantools_strict_and_with_the_foundation_loader_without_repairs(
    model: str,
) -> None:
    strict = cantools.database.load_file(dbc_path(model), strict=True)
    assert isinstance(strict, cantools.database.can.Database)
    loaded = load_dbc(dbc_path(model))
    assert loaded.notes == ()
    assert [m.name for m in strict.messages] == [m.name for m in loaded.database.messages]


@pytest.mark.parametrize("model", VEHICLE_MODELS)
def test_dbc_dumps_and_reloads_to_the_same_messages_and_e2e_attributes(
    model: str, tmp_path: Path
) -> None:
    database = load_dbc(dbc_path(model)).database
    dump_dbc(database, tmp_path / "copy.dbc")
    again = cantools.database.load_file(tmp_path / "copy.dbc", strict=True)
    assert isinstance(again, cantools.database.can.Database)

    def shape(db: cantools.database.can.Database) -> list[tuple[object, ...]]:
        return [
            (
                m.frame_id,
                m.name,
                m.cycle_time,
                e2e_protection(m),
                sorted(
                    (s.name, s.start, s.length, s.byte_order, s.scale, s.offset) for s in m.signals
                ),
            )
            for m in db.messages
        ]

    assert shape(again) == shape(database)


def test_dbc_has_realistic_size_periods_nodes_and_features(vehicle_can: VehicleCan) -> None:
    messages = vehicle_can.database.messages
    assert 25 <= len(messages) <= 40
    assert all(m.cycle_time is not None and 10 <= m.cycle_time <= 1000 for m in messages)
    assert {m.cycle_time for m in messages} >= {10, 100, 1000}
    assert any(m.is_extended_frame for m in messages) and any(
        not m.is_extended_frame for m in messages
    )
    assert any(m.is_multiplexed() for m in messages)
    assert len({s for m in messages for s in m.senders}) >= 12
    choices = {s.name: s.choices for m in messages for s in m.signals if s.choices}
    assert any("Gear" in name for name in choices)
    assert any("ChargeState" in name or "ChgState" in name for name in choices)


def test_every_signal_range_fits_its_bits_so_clipped_values_always_encode(
    vehicle_can: VehicleCan,
) -> None:
    for message in vehicle_can.database.messages:
        for signal in message.signals:
            low = -(1 << (signal.length - 1)) if signal.is_signed else 0
            high = (1 << (signal.length - 1)) - 1 if signal.is_signed else (1 << signal.length) - 1
            for bound in (signal.minimum, signal.maximum):
                assert bound is not None, f"{message.name}.{signal.name} has no range"
                raw = round((bound - signal.offset) / signal.scale)
                assert low <= raw <= high, (
                    f"{message.name}.{signal.name} bound {bound} needs raw {raw}"
                )


def test_safety_relevant_messages_carry_a_crc8_and_a_4_bit_rolling_counter(
    vehicle_can: VehicleCan,
) -> None:
    protected = {}
    for message in vehicle_can.database.messages:
        protection = e2e_protection(message)
        if protection is not None and protection.algorithm is not None:
            assert protection.counter_signal is not None
            assert message.get_signal_by_name(protection.counter_signal).length == 4
            protected[message.name] = protection.algorithm.name
    assert len(protected) >= 8
    m = vehicle_can.signal_map
    for path in (
        "Vehicle.Speed",
        "Vehicle.Powertrain.Transmission.SelectedGear",
        "Vehicle.Chassis.SteeringWheel.Angle",
        "Vehicle.Powertrain.TractionBattery.CurrentCurrent",
    ):
        carrier = next(e.message for e in m.mappings if e.vss_path == path)
        assert carrier in protected, f"{path} travels in {carrier}, which has no CRC"
    motor = next(
        e.message
        for e in m.mappings
        if e.vss_path.endswith("ElectricMotor.Front.Speed")
        or e.vss_path.endswith("ElectricMotor.Rear.Speed")
    )
    assert motor in protected
    assert len(set(protected.values())) == 1


def test_map_covers_over_fifty_catalog_signals_including_the_charge_limit(
    vehicle_can: VehicleCan,
) -> None:
    catalog = builtin_catalog()
    paths = set(vehicle_can.signal_map.paths)
    assert len(paths) >= 50
    assert paths <= set(catalog.paths)
    assert CHARGE_LIMIT in paths
    missing = [p for p in PHYSICS_PATHS if p not in paths]
    assert not missing


def test_mapped_vss_paths_match_the_packaged_map_files() -> None:
    catalog = builtin_catalog()
    assert set(MAPPED_VSS_PATHS) == set(VEHICLE_MODELS)
    for model in VEHICLE_MODELS:
        database = load_dbc(dbc_path(model)).database
        signal_map = load_signal_map(map_path(model), database, catalog)
        assert MAPPED_VSS_PATHS[model] == frozenset(signal_map.paths)


@pytest.mark.parametrize(
    ("physics_model", "model"), [("compact-hatch-50", "compact_bev"), ("midsize-suv-77", "suv_bev")]
)
def test_each_bus_carries_the_traction_motor_where_the_physics_model_has_it(
    physics_model: str, model: str
) -> None:
    axle = VEHICLE_PHYSICS[physics_model].motor.axle.capitalize()
    other = "Rear" if axle == "Front" else "Front"
    leaves = ("Speed", "Torque", "Power", "Temperature", "EngineCoolant.Temperature", "TimeInUse")
    carried = MAPPED_VSS_PATHS[model]
    assert {f"Vehicle.Powertrain.ElectricMotor.{axle}.{leaf}" for leaf in leaves} <= carried
    assert not any(p.startswith(f"Vehicle.Powertrain.ElectricMotor.{other}.") for p in carried)


def test_the_two_models_differ_as_two_manufacturers_would() -> None:
    compact, suv = load_vehicle_can("compact_bev"), load_vehicle_can("suv_bev")

    def speed(v: VehicleCan) -> tuple[int, str, str | None, float]:
        entry = next(e for e in v.signal_map.mappings if e.vss_path == "Vehicle.Speed")
        message = v.database.get_message_by_name(entry.message)
        signal = message.get_signal_by_name(entry.signal)
        return message.frame_id, signal.byte_order, signal.unit, signal.scale

    assert speed(compact) != speed(suv)
    assert speed(compact)[1:3] == ("little_endian", "km/h")
    assert speed(suv)[1:3] == ("big_endian", "m/s")
    assert {m.frame_id for m in compact.database.messages} != {
        m.frame_id for m in suv.database.messages
    }


def test_unknown_model_is_refused_with_the_known_names() -> None:
    with pytest.raises(NotFoundError, match="'sedan' is not one of compact_bev, suv_bev"):
        load_vehicle_can("sedan")
    with pytest.raises(KeyError):
        MAPPED_VSS_PATHS["sedan"]
