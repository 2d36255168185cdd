"""The reference vehicle's DBC and VSS map: realistic features, valid against the catalog."""

from __future__ import annotations

import cantools
import numpy as np

from drivetrain.core.vss import builtin_catalog
from drivetrain.demo.can_capture import SignalIndex, synthesize_capture
from drivetrain.demo.drive_profile import drive_profile
from drivetrain.sim import REFERENCE_DBC, frame_checksum, load_reference_vehicle


def test_reference_dbc_has_the_features_real_cars_use() -> None:
    database = cantools.database.load_file(REFERENCE_DBC)  # the reference loader accepts it
    assert isinstance(database, cantools.database.can.Database)
    messages = database.messages
    signals = [s for m in messages for s in m.signals]
    assert 10 <= len(messages) <= 15
    assert all(not m.is_extended_frame and m.frame_id < 0x800 for m in messages)
    assert {s.byte_order for s in signals} == {"little_endian", "big_endian"}
    assert any(s.is_signed for s in signals)
    assert any(m.is_multiplexed() for m in messages)
    gear = database.get_message_by_name("VCU_Drive").get_signal_by_name("GearSelected")
    assert gear.choices is not None
    assert {str(v) for v in gear.choices.values()} >= {"P", "R", "N", "D"}
    assert sum(s.name.endswith("_Counter") for s in signals) >= 5
    assert sum(s.name.endswith("_Checksum") for s in signals) >= 5
    assert all(m.cycle_time for m in messages)


def test_reference_map_covers_the_key_vehicle_signals_with_catalog_paths() -> None:
    vehicle = load_reference_vehicle()  # validates every entry against the DBC and catalog
    paths = set(vehicle.signal_map.paths)
    for path in (
        "Vehicle.Speed",
        "Vehicle.Powertrain.ElectricMotor.Rear.Torque",
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "Vehicle.Powertrain.TractionBattery.CurrentVoltage",
        "Vehicle.Powertrain.TractionBattery.CurrentCurrent",
        "Vehicle.Chassis.Brake.PedalPosition",
        "Vehicle.Chassis.SteeringWheel.Angle",
        "Vehicle.CurrentLocation.Latitude",
        "Vehicle.CurrentLocation.Longitude",
        "Vehicle.Cabin.HVAC.AmbientAirTemperature",
        "Vehicle.LowVoltageBattery.CurrentVoltage",
    ):
        assert path in paths
    assert paths <= set(builtin_catalog().paths)


def test_synthetic_frames_decode_with_cantools_to_the_encoded_values() -> None:
    vehicle = load_reference_vehicle()
    database = vehicle.database
    index = SignalIndex.of(database)
    capture = synthesize_capture(
        database, index, drive_profile(np.random.default_rng(5)), "1DTBEV00005000001"
    )
    frames = capture.frames
    expected = {
        (int(f), float(t), index.keys[int(s)][1]): float(v)
        for f, t, s, v in zip(
            capture.frame_id, capture.timestamp_s, capture.signal_id, capture.value, strict=True
        )
    }
    for row in range(0, len(frames), 37):  # a spread sample, every message type included
        frame_id = int(frames.frame_id[row])
        message = database.get_message_by_frame_id(frame_id)
        payload = bytes(frames.data[row, : frames.length[row]])
        decoded = message.decode(payload, decode_choices=False)
        assert isinstance(decoded, dict)
        for name, value in decoded.items():
            encoded = expected[(frame_id, float(frames.timestamp_s[row]), name)]
            assert (
                abs(float(value) - encoded)  # type: ignore[arg-type]
                <= abs(message.get_signal_by_name(name).scale) / 2 + 1e-9
            )
        if f"{message.name}_Checksum" in decoded:
            assert decoded[f"{message.name}_Checksum"] == frame_checksum(payload, frame_id)


def test_same_seed_gives_the_same_capture() -> None:
    vehicle = load_reference_vehicle()
    index = SignalIndex.of(vehicle.database)
    one = synthesize_capture(
        vehicle.database, index, drive_profile(np.random.default_rng(9)), "1DTBEV00009000001"
    )
    two = synthesize_capture(
        vehicle.database, index, drive_profile(np.random.default_rng(9)), "1DTBEV00009000001"
    )
    other = synthesize_capture(
        vehicle.database, index, drive_profile(np.random.default_rng(10)), "1DTBEV00009000001"
    )
    assert np.array_equal(one.frames.data, two.frames.data)
    assert not np.array_equal(one.frames.data, other.frames.data)
