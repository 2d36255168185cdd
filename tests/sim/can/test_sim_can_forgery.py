"""Targeted spoofing and masquerade: forged frames carry the target values with valid counters and
checksums, and the ground truth matches what reached (and left) the bus."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from cantools.database.can import Database

from drivetrain.core.errors import NotFoundError
from drivetrain.sim.can import (
    FrameSynthesizer,
    LabelledFrames,
    VehicleCan,
    dbc_values,
    load_vehicle_can,
    masquerade,
    spoof,
)
from drivetrain.sim.can.throughput import random_vss_values


def _stream(
    traffic: LabelledFrames, database: Database, name: str
) -> tuple[npt.NDArray[np.float64], list[dict[str, Any]], npt.NDArray[np.bool_]]:
    """(times, decoded signals, is_attack) of one message's frames, in time order."""
    message = database.get_message_by_name(name)
    rows = np.flatnonzero(
        (traffic.frames.frame_id == message.frame_id)
        & (traffic.frames.is_extended == message.is_extended_frame)
    )
    decoded = []
    for i in rows:
        values = message.decode(
            bytes(traffic.frames.data[i, : message.length]), decode_choices=False
        )
        assert isinstance(values, dict)
        decoded.append(values)
    return traffic.frames.timestamp_s[rows], decoded, traffic.is_attack[rows]


def test_speed_spoofing_injects_valid_frames_faster_than_the_genuine_sender(
    suv: VehicleCan, suv_synthesizer: FrameSynthesizer, suv_traffic: LabelledFrames
) -> None:
    message, values = dbc_values(suv.signal_map, {"Vehicle.Speed": 36.0})
    assert message == "ESC_VehSpeed" and values == {"VehSpeed": pytest.approx(10.0)}
    attacked = spoof(
        suv_traffic,
        np.random.default_rng(1),
        suv_synthesizer.bus_layout,
        message=message,
        values=values,
        start_s=2.0,
        duration_s=3.0,
    )
    record = attacked.records[0]
    times, decoded, forged = _stream(attacked, suv.database, "ESC_VehSpeed")
    assert (
        record.kind == "spoofing" and record.label == "Fabrication" and record.can_ids == (0x1A1,)
    )
    assert (
        record.injected == forged.sum()
        and record.start_s == times[forged].min()
        and record.end_s == times[forged].max()
    )
    assert 2.0 <= record.start_s and record.end_s < 5.0
    assert all(d["VehSpeed"] == pytest.approx(10.0) for d, f in zip(decoded, forged) if f)
    genuine_in_window = (~forged & (times >= 2.0) & (times < 5.0)).sum()
    assert forged.sum() >= 4 * genuine_in_window > 0  # the genuine ECU keeps sending, outnumbered
    assert suv_synthesizer.bus_layout.checksum_ok(attacked.frames).all()
    # each forged counter continues from the last genuine one the attacker saw
    counters = [d["VehSpd_AliveCnt"] for d in decoded]
    last_genuine, run = None, 0
    for counter, is_forged in zip(counters, forged):
        if not is_forged:
            last_genuine, run = counter, 0
            continue
        run += 1
        assert last_genuine is not None and counter == (last_genuine + run) % 16


def test_gear_and_motor_speed_spoofing_on_the_compact_hatch() -> None:
    compact = load_vehicle_can("compact_bev")
    synth = FrameSynthesizer(compact.database, compact.signal_map, seed=2)
    values = random_vss_values(synth, 1, np.random.default_rng(8))
    traffic = LabelledFrames.benign(
        synth.synthesize(0.0, 4.0, values).for_vehicle(0), "DTCMP0000000000001"
    )
    rng = np.random.default_rng(3)
    gear_message, gear = dbc_values(
        compact.signal_map, {"Vehicle.Powertrain.Transmission.SelectedGear": -1}
    )
    traffic = spoof(
        traffic,
        rng,
        synth.bus_layout,
        message=gear_message,
        values=gear,
        start_s=1.0,
        duration_s=1.0,
    )
    rpm_message, rpm = dbc_values(
        compact.signal_map, {"Vehicle.Powertrain.ElectricMotor.Front.Speed": 12000}
    )
    traffic = spoof(
        traffic,
        rng,
        synth.bus_layout,
        message=rpm_message,
        values=rpm,
        start_s=2.0,
        duration_s=1.0,
        interval_s=0.001,
    )
    _, gear_frames, gear_forged = _stream(traffic, compact.database, "VCU_Drive")
    _, rpm_frames, rpm_forged = _stream(traffic, compact.database, "MCU_Status")
    assert {d["GearSelected"] for d, f in zip(gear_frames, gear_forged) if f} == {-1}
    assert {d["MotorSpeed"] for d, f in zip(rpm_frames, rpm_forged) if f} == {12000}
    assert rpm_forged.sum() == pytest.approx(1000, abs=2)
    assert synth.bus_layout.checksum_ok(traffic.frames).all()
    assert [r.can_ids for r in traffic.records] == [(0x110,), (0x0D0,)]


def test_masquerade_silences_the_genuine_sender_and_takes_its_place_seamlessly(
    suv: VehicleCan, suv_synthesizer: FrameSynthesizer, suv_traffic: LabelledFrames
) -> None:
    attacked = masquerade(
        suv_traffic,
        np.random.default_rng(4),
        suv_synthesizer.bus_layout,
        message="VCU_GearStatus",
        values={"GearSelected": 0},
        start_s=3.0,
        duration_s=4.0,
    )
    record = attacked.records[0]
    times, decoded, forged = _stream(attacked, suv.database, "VCU_GearStatus")
    _, before, _ = _stream(suv_traffic, suv.database, "VCU_GearStatus")
    silenced = len(before) - (~forged).sum()
    assert record.kind == "masquerade" and record.label == "Masquerade"
    assert record.removed == silenced == 80 and record.injected == forged.sum()
    assert not (~forged & (times >= 3.0) & (times < 7.0)).any()  # no genuine frame inside
    assert (times[forged] >= 3.0).all() and (times[forged] < 7.0).all()
    assert record.start_s >= 3.0 and record.end_s < 7.0
    gaps = np.diff(times[forged])
    assert np.median(gaps) == pytest.approx(0.05, rel=1e-3)  # the message's period, own clock
    assert all(d["GearSelected"] == 0 for d, f in zip(decoded, forged) if f)
    counters = np.array([d["Gear_AliveCnt"] for d in decoded])
    first_forged = int(np.argmax(forged))
    assert (
        np.diff(counters[: first_forged + int(forged.sum())]) % 16 == 1
    ).all()  # no counter jump at takeover
    assert suv_synthesizer.bus_layout.checksum_ok(attacked.frames).all()
    others = attacked.frames.frame_id != 0x0F4
    assert np.array_equal(
        attacked.frames.data[others], suv_traffic.frames.data[suv_traffic.frames.frame_id != 0x0F4]
    )


def test_forging_names_only_data_signals_outside_multiplexer_branches(
    suv_synthesizer: FrameSynthesizer, suv_traffic: LabelledFrames
) -> None:
    rng, layout = np.random.default_rng(0), suv_synthesizer.bus_layout
    with pytest.raises(NotFoundError, match="no message 'ESC_VehSpd'; close matches: ESC_VehSpeed"):
        spoof(
            suv_traffic,
            rng,
            layout,
            message="ESC_VehSpd",
            values={"VehSpeed": 0},
            start_s=1,
            duration_s=1,
        )
    with pytest.raises(NotFoundError, match="no signal 'Speed'"):
        spoof(
            suv_traffic,
            rng,
            layout,
            message="ESC_VehSpeed",
            values={"Speed": 0},
            start_s=1,
            duration_s=1,
        )
    with pytest.raises(ValueError, match="counter, checksum or multiplexer switch"):
        spoof(
            suv_traffic,
            rng,
            layout,
            message="ESC_VehSpeed",
            values={"VehSpd_AliveCnt": 0},
            start_s=1,
            duration_s=1,
        )
    with pytest.raises(ValueError, match="BMS_CellInfo.CellVoltMin is multiplexed"):
        masquerade(
            suv_traffic,
            rng,
            layout,
            message="BMS_CellInfo",
            values={"CellVoltMin": 2.0},
            start_s=1,
            duration_s=1,
        )
    with pytest.raises(ValueError, match="no genuine frame of VCU_GearStatus"):
        masquerade(
            suv_traffic,
            rng,
            layout,
            message="VCU_GearStatus",
            values={"GearSelected": 0},
            start_s=20.0,
            duration_s=1.0,
        )


def test_vss_targets_resolve_through_the_map_or_are_refused(suv: VehicleCan) -> None:
    message, values = dbc_values(suv.signal_map, {"Vehicle.Cabin.HVAC.AmbientAirTemperature": 20.0})
    assert message == "HVAC_Front" and values["CabinTempK"] == pytest.approx(293.15)
    with pytest.raises(NotFoundError, match="'Vehicle.Powertrain.FuelSystem.Range' is not carried"):
        dbc_values(suv.signal_map, {"Vehicle.Powertrain.FuelSystem.Range": 1.0})
    with pytest.raises(ValueError, match="forge one message at a time"):
        dbc_values(suv.signal_map, {"Vehicle.Speed": 1.0, "Vehicle.CurrentLocation.Latitude": 1.0})
