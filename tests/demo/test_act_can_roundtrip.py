"""The "CAN bus to VSS signals" act: passes on a clean capture, fails on a corrupted frame."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from act_support import act_context

from drivetrain.core.can import FrameBatch, VssSignals
from drivetrain.core.transport import InProcessTransport, Message, validate_vin
from drivetrain.core.vss import builtin_catalog
from drivetrain.demo import PlatformHandles
from drivetrain.demo.act_can_roundtrip import (
    CAN_ROUNDTRIP,
    TelemetryCounter,
    demo_vin,
    make_can_roundtrip_act,
    publish_telemetry,
    vss_values,
)

VCU_DRIVE_ID = 0x0C0
VIN = "1DTBEV00007000001"


def test_clean_capture_passes_with_every_frame_and_value_accounted_for(
    platform: PlatformHandles,
) -> None:
    result = CAN_ROUNDTRIP.run(act_context(platform, vehicles=2))
    assert result.passed, result.check
    figures = {k: int(v) for k, v in result.figures.items()}
    assert figures["vehicles"] == 2
    assert figures["frames"] == 2 * 13_620  # 60 s of drive at the DBC's cycle times
    assert figures["signals"] > figures["frames"]
    assert figures["vss_values"] > 0 and figures["frames/s"] > 0
    assert "all decoded" in result.check and "received over the bus" in result.check


def test_same_seed_gives_the_same_figures(platform: PlatformHandles) -> None:
    first = CAN_ROUNDTRIP.run(act_context(platform, seed=42)).figures
    second = CAN_ROUNDTRIP.run(act_context(platform, seed=42)).figures
    rate = "frames/s"
    assert {k: v for k, v in first.items() if k != rate} == {
        k: v for k, v in second.items() if k != rate
    }


def test_corrupted_frame_fails_the_check_naming_the_signal(platform: PlatformHandles) -> None:
    def flip_one_speed_bit(frames: FrameBatch) -> FrameBatch:
        row = int(np.flatnonzero(frames.frame_id == VCU_DRIVE_ID)[500])
        data = frames.data.copy()
        data[row, 1] ^= 0x10  # VehicleSpeed's high byte: +40.96 km/h
        return replace(frames, data=data)

    result = make_can_roundtrip_act(tamper=flip_one_speed_bit).run(act_context(platform))
    assert not result.passed
    assert "1 decoded values differ" in result.check
    assert "VehicleSpeed" in result.check
    assert "more" in result.check  # the checksum failure is reported too


def test_dropped_frame_fails_the_check(platform: PlatformHandles) -> None:
    def drop_last(frames: FrameBatch) -> FrameBatch:
        return frames.take(np.arange(len(frames) - 1))

    result = make_can_roundtrip_act(tamper=drop_last).run(act_context(platform))
    assert not result.passed
    assert "signal values, expected" in result.check


def test_act_stops_adding_vehicles_when_its_budget_runs_short(platform: PlatformHandles) -> None:
    result = CAN_ROUNDTRIP.run(act_context(platform, vehicles=50, budget_s=1.5))
    assert result.passed, result.check
    assert 1 <= int(result.figures["vehicles"]) < 50
    assert "of 50 vehicles (time budget)" in result.check


def test_demo_vins_are_valid_and_distinct() -> None:
    vins = {demo_vin(7, n) for n in range(1, 101)}
    assert len(vins) == 100
    assert all(validate_vin(v) == v for v in vins)


def test_vss_values_take_the_catalog_datatypes_and_report_rejections() -> None:
    catalog = builtin_catalog()
    paths = ("Vehicle.Cabin.HVAC.IsAirConditioningActive", "Vehicle.Chassis.Brake.PedalPosition")
    vss = VssSignals(
        timestamp_s=np.zeros(4),
        path_index=np.array([0, 1, 1, 0], np.int32),
        value=np.array([1.0, 20.4, 180.0, 0.0]),
        source_row=np.arange(4),
        paths=paths,
    )
    typed, invalid, first = vss_values(vss, catalog)
    assert typed == [True, 20, 180, False]
    assert invalid == 1 and "Vehicle.Chassis.Brake.PedalPosition = 180" in first


def test_telemetry_counter_drops_a_redelivered_batch() -> None:
    counter = TelemetryCounter(builtin_catalog())
    body = json.dumps({"batch": "V:1", "paths": ["Vehicle.Speed"], "value": [1.0, 2.0]}).encode()
    counter(Message("dt/v1/V/telemetry", body))
    counter(Message("dt/v1/V/telemetry", body, attempt=2))
    assert (counter.messages, counter.values, counter.unknown_paths) == (1, 2, set())


def test_tmp_data_dir_holds_the_state_database(platform: PlatformHandles) -> None:
    assert Path(platform.settings.data_dir, "state.db").is_file()


def test_telemetry_batches_by_second_whatever_the_row_order() -> None:
    catalog = builtin_catalog()
    vss = VssSignals(
        timestamp_s=np.array([1.5, 0.2, 1.7, 0.4, 2.1]),  # decoders may group rows by message
        path_index=np.zeros(5, np.int32),
        value=np.array([15.0, 2.0, 17.0, 4.0, 21.0]),
        source_row=np.arange(5),
        paths=("Vehicle.Speed",),
    )
    with InProcessTransport() as bus:
        counter = TelemetryCounter(catalog)
        bus.subscribe("dt/v1/+/telemetry", counter)
        published = publish_telemetry(bus, VIN, vss, [15.0, 2.0, 17.0, 4.0, 21.0])
        bus.drain(timeout_s=5)
    assert published == counter.values == 5
    assert counter.messages == 3  # seconds 0, 1 and 2
