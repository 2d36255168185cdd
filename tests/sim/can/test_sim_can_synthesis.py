"""Frame synthesis: bit-exact with cantools, decodes back to the VSS values, counters, CRCs,
timing, determinism, and refusal of bad input."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from cantools.database.can import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from drivetrain.core.can import BatchDecoder, FrameBatch
from drivetrain.core.errors import NotFoundError
from drivetrain.sim.can import (
    FleetFrames,
    FrameSynthesizer,
    TimingModel,
    VehicleCan,
    load_vehicle_can,
)
from drivetrain.sim.can.throughput import measure_cantools, measure_synthesis, random_vss_values

CRC_PARAMETERS = {"CRC8_SAE_J1850": (0x1D, 0xFF, 0xFF), "CRC8_AUTOSAR_H2F": (0x2F, 0xFF, 0xFF)}


def decode(message: Message, data: bytes, choices: bool = False) -> dict[str, Any]:
    """cantools' decoding of one frame (the reference decoder)."""
    decoded = message.decode(data, decode_choices=choices)
    assert isinstance(decoded, dict)
    return decoded


def crc8_bitwise(data: bytes, poly: int, init: int, xor_out: int) -> int:
    """Textbook CRC-8 (MSB first, no reflection), bit by bit: the reference."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ xor_out


def _assert_frames_equal_cantools(
    synthesizer: FrameSynthesizer, batch: FleetFrames, values: dict[str, npt.NDArray[np.float64]]
) -> int:
    """Every frame equals cantools' encode of the values the synthesizer says it encoded, with
    the counter, checksum and multiplexer value taken from the frame itself."""
    database = synthesizer.database
    expected = synthesizer.signal_values(values, n_vehicles=batch.n_vehicles)
    messages = {(m.frame_id, m.is_extended_frame): m for m in database.messages}
    frames = batch.frames
    for i in range(len(batch)):
        message = messages[(int(frames.frame_id[i]), bool(frames.is_extended[i]))]
        data = bytes(frames.data[i, : message.length])
        assert int(frames.length[i]) == message.length
        assert not frames.data[i, message.length :].any()
        decoded = decode(message, data)
        given_values = expected[message.name]
        vehicle = int(batch.vehicle[i])
        signal_values = {
            name: float(given_values[name][vehicle]) if name in given_values else value
            for name, value in decoded.items()
        }
        assert message.encode(signal_values, scaling=True, strict=True) == data, (
            f"frame {i} of {message.name} differs from cantools"
        )
    return len(batch)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_frame_is_bit_identical_to_cantools_encode_of_the_same_values(
    synthesizer: FrameSynthesizer, data: st.DataObject
) -> None:
    paths = synthesizer.mapped_paths
    n = data.draw(st.integers(1, 3), label="vehicles")
    matrix = data.draw(
        hnp.arrays(
            np.float64,
            (len(paths), n),
            elements=st.floats(-2e6, 2e6, allow_nan=False, allow_infinity=False, width=64)
            | st.sampled_from([0.0, 0.5, -0.5, 1.0, 2.5, 100.0, 1e-7]),
        ),
        label="values",
    )
    start = data.draw(st.floats(0.0, 1e4), label="start_s")
    values = dict(zip(paths, matrix))
    batch = synthesizer.synthesize(start, start + 1.0, values)
    assert _assert_frames_equal_cantools(synthesizer, batch, values) > 300 * n


def _consistent_values(
    synthesizer: FrameSynthesizer, n: int, seed: int
) -> dict[str, npt.NDArray[np.float64]]:
    """In-range values where VSS paths fed by one CAN signal (one brake-fluid reservoir for four
    wheels) share a value, as a real vehicle's would."""
    values = random_vss_values(synthesizer, n, np.random.default_rng(seed))
    by_signal: dict[tuple[str, str], str] = {}
    for entry in synthesizer.signal_map.mappings:
        key = (entry.message, entry.signal)
        if key in by_signal:
            values[entry.vss_path] = values[by_signal[key]]
        else:
            by_signal[key] = entry.vss_path
    return values


def test_decoding_with_the_batch_decoder_and_map_returns_the_vss_values_within_resolution(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    n = 6
    values = _consistent_values(synthesizer, n, seed=4)
    batch = synthesizer.synthesize(3.0, 5.0, values)
    decoder = BatchDecoder(vehicle_can.database)
    resolution = {
        e.vss_path: abs(
            vehicle_can.database.get_message_by_name(e.message).get_signal_by_name(e.signal).scale
            * e.conversion().factor
        )
        for e in vehicle_can.signal_map.mappings
    }
    seen: set[str] = set()
    for vehicle in range(n):
        vss = vehicle_can.signal_map.apply(decoder.decode(batch.for_vehicle(vehicle)))
        for path_index, value in zip(vss.path_index.tolist(), vss.value.tolist()):
            path = vss.paths[path_index]
            seen.add(path)
            wanted = float(values[path][vehicle])
            assert abs(value - wanted) <= resolution[path] / 2 * (1 + 1e-9) + 1e-9 * abs(wanted), (
                f"{path}: vehicle {vehicle} decoded {value}, sent {wanted}"
            )
    assert seen == set(synthesizer.mapped_paths)


def test_values_outside_the_dbc_range_saturate_at_the_range_ends(suv: VehicleCan) -> None:
    synth = FrameSynthesizer(suv.database, suv.signal_map)
    batch = synth.synthesize(0.0, 0.1, {"Vehicle.Speed": [5000.0, -3.0]})
    message = suv.database.get_message_by_name("ESC_VehSpeed")
    speeds = [
        decode(message, bytes(batch.for_vehicle(v).data[i]))["VehSpeed"]
        for v in range(2)
        for i in np.flatnonzero(batch.for_vehicle(v).frame_id == message.frame_id)[:1]
    ]
    assert speeds == [pytest.approx(327.675), 0.0]


def _counter_and_crc_streams(
    vehicle_can: VehicleCan, batch: FleetFrames
) -> dict[tuple[int, str], list[int]]:
    """Per (vehicle, message), the counter values in time order — after checking every CRC
    byte against the bitwise reference over the DBC's data id and the other payload bytes."""
    streams: dict[tuple[int, str], list[int]] = defaultdict(list)
    messages = {(m.frame_id, m.is_extended_frame): m for m in vehicle_can.database.messages}
    for i in range(len(batch)):
        frames = batch.frames
        message = messages[(int(frames.frame_id[i]), bool(frames.is_extended[i]))]
        assert message.dbc is not None
        attributes = message.dbc.attributes
        if "E2ECounterSignal" not in attributes:
            continue
        data = bytes(frames.data[i, : message.length])
        decoded = decode(message, data)
        crc_signal = message.get_signal_by_name(str(attributes["E2EChecksumSignal"].value))
        crc_byte = crc_signal.start // 8
        data_id = int(attributes["E2EDataId"].value)
        covered = bytes([data_id & 0xFF, data_id >> 8]) + bytes(
            b for j, b in enumerate(data) if j != crc_byte
        )
        poly, init, xor_out = CRC_PARAMETERS[str(attributes["E2EChecksumAlgorithm"].value)]
        assert data[crc_byte] == crc8_bitwise(covered, poly, init, xor_out), (
            f"{message.name} frame {i}"
        )
        streams[(int(batch.vehicle[i]), message.name)].append(
            int(decoded[str(attributes["E2ECounterSignal"].value)])
        )
    return streams


def test_crc_bytes_verify_against_a_bitwise_reference_and_counters_step_by_one_and_wrap(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    values = random_vss_values(synthesizer, 3, np.random.default_rng(9))
    batch = synthesizer.synthesize(0.0, 1.0, values)
    streams = _counter_and_crc_streams(vehicle_can, batch)
    assert len(streams) >= 3 * 8
    wraps = 0
    for key, counters in streams.items():
        steps = np.diff(counters) % 16
        assert (steps == 1).all(), f"{key}: counters {counters[:20]}"
        wraps += sum(1 for a, b in itertools.pairwise(counters) if (a, b) == (15, 0))
    assert wraps > 0
    assert len({c[0] for c in streams.values()}) > 1  # streams start at different counter values


def test_crc_check_values_match_the_crc_catalogue() -> None:
    from drivetrain.sim.can import CRC8_AUTOSAR_H2F, CRC8_SAE_J1850

    assert CRC8_SAE_J1850.compute(b"123456789") == 0x4B
    assert CRC8_AUTOSAR_H2F.compute(b"123456789") == 0xDF
    for crc in (CRC8_SAE_J1850, CRC8_AUTOSAR_H2F):
        for data in (b"", b"\x00", bytes(range(7)), b"\xff" * 8):
            assert crc.compute(data) == crc8_bitwise(data, crc.poly, crc.init, crc.xor_out)


def test_counters_continue_across_windows(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    values = random_vss_values(synthesizer, 2, np.random.default_rng(1))
    streams = _counter_and_crc_streams(vehicle_can, synthesizer.synthesize(0.0, 0.5, values))
    later = _counter_and_crc_streams(vehicle_can, synthesizer.synthesize(0.5, 1.0, values))
    for key, counters in streams.items():
        assert (later[key][0] - counters[-1]) % 16 == 1


def _fleet_frames_equal(a: FrameBatch, b: FrameBatch) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("timestamp_s", "frame_id", "is_extended", "bus", "length", "data")
    )


def test_same_seed_gives_the_same_frames_and_another_seed_other_timing(
    vehicle_can: VehicleCan,
) -> None:
    values = {"Vehicle.Speed": [50.0, 80.0, 120.0]}
    one = FrameSynthesizer(vehicle_can.database, vehicle_can.signal_map, seed=7).synthesize(
        0.0, 2.0, values
    )
    two = FrameSynthesizer(vehicle_can.database, vehicle_can.signal_map, seed=7).synthesize(
        0.0, 2.0, values
    )
    other = FrameSynthesizer(vehicle_can.database, vehicle_can.signal_map, seed=8).synthesize(
        0.0, 2.0, values
    )
    assert _fleet_frames_equal(one.frames, two.frames)
    assert not np.array_equal(one.frames.timestamp_s[:50], other.frames.timestamp_s[:50])


def test_splitting_a_window_in_two_gives_the_same_bus(synthesizer: FrameSynthesizer) -> None:
    values = random_vss_values(synthesizer, 4, np.random.default_rng(2))
    whole = synthesizer.synthesize(10.0, 12.0, values)
    first = synthesizer.synthesize(10.0, 10.7, values)
    second = synthesizer.synthesize(10.7, 12.0, values)
    for vehicle in range(4):
        joined = FrameBatch.concat([first.for_vehicle(vehicle), second.for_vehicle(vehicle)])
        order = np.argsort(joined.timestamp_s, kind="stable")
        assert _fleet_frames_equal(joined.take(order), whole.for_vehicle(vehicle))


def test_a_vehicle_sends_the_same_frames_alone_or_in_a_fleet(synthesizer: FrameSynthesizer) -> None:
    values = random_vss_values(synthesizer, 5, np.random.default_rng(6))
    fleet = synthesizer.synthesize(0.0, 1.0, values, vehicle_ids=[100, 101, 102, 103, 104])
    alone = synthesizer.synthesize(
        0.0, 1.0, {p: v[3:4] for p, v in values.items()}, vehicle_ids=[103]
    )
    assert _fleet_frames_equal(fleet.for_vehicle(3), alone.for_vehicle(0))


def test_frames_follow_each_message_period_with_bounded_jitter_and_drift(
    vehicle_can: VehicleCan,
) -> None:
    timing = TimingModel(jitter_fraction=0.05, max_jitter_s=0.002, clock_drift_ppm=50.0)
    synth = FrameSynthesizer(vehicle_can.database, vehicle_can.signal_map, seed=3, timing=timing)
    frames = synth.synthesize(0.0, 20.0, {}, vehicle_ids=[0]).for_vehicle(0)
    assert (np.diff(frames.timestamp_s) >= 0).all()
    for message in vehicle_can.database.messages:
        times = frames.timestamp_s[
            (frames.frame_id == message.frame_id)
            & (frames.is_extended == message.is_extended_frame)
        ]
        assert message.cycle_time is not None
        period = message.cycle_time / 1000.0
        assert len(times) in (int(20.0 / period), int(20.0 / period) + 1)
        gaps = np.diff(times)
        slack = min(0.05 * period, 0.002) + 50e-6 * period + 1e-9
        assert gaps.min() >= period - slack and gaps.max() <= period + slack, message.name
        assert times.min() < period + slack  # first frame within one period of the start
    assert len(np.unique(np.diff(frames.timestamp_s))) > len(frames) // 2  # jittered, not a grid


def test_multiplexed_messages_cycle_through_their_pages(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    frames = synthesizer.synthesize(0.0, 5.0, {}, vehicle_ids=[0]).for_vehicle(0)
    for message in vehicle_can.database.messages:
        if not message.is_multiplexed():
            continue
        switch = next(s for s in message.signals if s.is_multiplexer)
        rows = np.flatnonzero(frames.frame_id == message.frame_id)
        pages = [
            decode(message, bytes(frames.data[i, : message.length]))[switch.name] for i in rows
        ]
        branch_pages = sorted({p for s in message.signals for p in (s.multiplexer_ids or [])})
        assert pages[: len(branch_pages) * 2] == [
            branch_pages[(pages[0] - branch_pages[0] + j) % len(branch_pages)]
            for j in range(len(branch_pages) * 2)
        ]


def test_unmapped_signals_carry_their_dbc_start_value_unless_given(
    suv: VehicleCan, suv_synthesizer: FrameSynthesizer
) -> None:
    message = suv.database.get_message_by_name("CCU_ChargeStatus")
    default = suv_synthesizer.synthesize(0.0, 0.5, {}, vehicle_ids=[0]).for_vehicle(0)
    row = int(np.flatnonzero(default.frame_id == message.frame_id)[0])
    decoded = decode(message, bytes(default.data[row]))
    assert decoded["ChgState"] == 0 and decoded["ChgLimitSoC"] == 80.0  # GenSigStartValue 160 * 0.5
    given = suv_synthesizer.synthesize(
        0.0, 0.5, {}, can_signals={"CCU_ChargeStatus.ChgState": 2}, vehicle_ids=[0]
    )
    frames = given.for_vehicle(0)
    row = int(np.flatnonzero(frames.frame_id == message.frame_id)[0])
    assert decode(message, bytes(frames.data[row]), choices=True)["ChgState"] == "Charging"


def test_bad_input_is_refused_with_the_field_and_what_was_expected(
    suv_synthesizer: FrameSynthesizer,
) -> None:
    s = suv_synthesizer
    with pytest.raises(
        ValueError,
        match="one value per vehicle; 'Vehicle.Speed' has 2, 'Vehicle.TraveledDistance' has 3",
    ):
        s.synthesize(
            0.0, 1.0, {"Vehicle.Speed": [1.0, 2.0], "Vehicle.TraveledDistance": [1.0, 2.0, 3.0]}
        )
    with pytest.raises(ValueError, match="'Vehicle.Speed' must be finite; vehicle 1 has nan"):
        s.synthesize(0.0, 1.0, {"Vehicle.Speed": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="'Vehicle.Speed' must be numbers"):
        s.synthesize(0.0, 1.0, {"Vehicle.Speed": ["fast"]})
    with pytest.raises(ValueError, match=r"window \[2.0, 1.0\)"):
        s.synthesize(2.0, 1.0, {"Vehicle.Speed": [1.0]})
    with pytest.raises(ValueError, match="give vehicle_ids"):
        s.synthesize(0.0, 1.0, {})
    with pytest.raises(NotFoundError, match="no signal 'ChgStat'; close matches: ChgState"):
        s.synthesize(0.0, 1.0, {}, can_signals={"CCU_ChargeStatus.ChgStat": 1}, vehicle_ids=[0])
    with pytest.raises(NotFoundError, match="sets those itself"):
        s.synthesize(0.0, 1.0, {}, can_signals={"ESC_VehSpeed.VehSpd_AliveCnt": 1}, vehicle_ids=[0])
    with pytest.raises(ValueError, match="jitter_fraction must be in"):
        TimingModel(jitter_fraction=0.6)


def test_masked_vehicles_send_the_start_value_and_the_others_their_own(
    suv: VehicleCan, suv_synthesizer: FrameSynthesizer
) -> None:
    speed = np.ma.MaskedArray([3000.0, 5000.0, 7000.0], mask=[False, True, False])
    batch = suv_synthesizer.synthesize(
        0.0, 0.1, {"Vehicle.Powertrain.ElectricMotor.Rear.Speed": speed}
    )
    message = suv.database.get_message_by_name("MCU_R_Status")
    sent = []
    for vehicle in range(3):
        frames = batch.for_vehicle(vehicle)
        row = int(np.flatnonzero(frames.frame_id == message.frame_id)[0])
        sent.append(decode(message, bytes(frames.data[row]))["MotRSpd"])
    assert sent == [3000.0, 0.0, 7000.0]
    hidden_nan = np.ma.MaskedArray([1.0, float("nan")], mask=[False, True])
    suv_synthesizer.synthesize(0.0, 0.1, {"Vehicle.Speed": hidden_nan})  # masked: not a value


def test_unknown_vss_paths_are_not_carried_and_change_nothing(
    suv_synthesizer: FrameSynthesizer,
) -> None:
    plain = suv_synthesizer.synthesize(0.0, 1.0, {"Vehicle.Speed": [10.0]})
    extra = suv_synthesizer.synthesize(
        0.0, 1.0, {"Vehicle.Speed": [10.0], "Vehicle.Powertrain.FuelSystem.Range": [5.0]}
    )
    assert _fleet_frames_equal(plain.frames, extra.frames)


def test_throughput_helpers_measure_real_synthesis_and_the_cantools_baseline() -> None:
    fast = measure_synthesis("compact_bev", vehicles=20, windows=2)
    slow = measure_cantools("compact_bev", frames=500)
    assert fast.frames > 20 * 2 * 700 and slow.frames == 500
    assert fast.bus_frames_per_s == pytest.approx(slow.bus_frames_per_s, rel=0.02)
    assert fast.frames_per_s > 0 and slow.frames_per_s > 0


def test_an_unknown_model_is_refused_by_the_throughput_helper() -> None:
    with pytest.raises(NotFoundError):
        measure_synthesis("sedan", vehicles=1, windows=1)
    assert load_vehicle_can("compact_bev").model == "compact_bev"
