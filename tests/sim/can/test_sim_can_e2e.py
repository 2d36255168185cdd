"""End-to-end protection as a receiver checks it: what a CRC catches and what it cannot."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch
from drivetrain.sim.can import FrameSynthesizer, LabelledFrames, VehicleCan, fuzz, replay
from drivetrain.sim.can.layout import payload_words


def _protected_rows(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer, frames: FrameBatch
) -> npt.NDArray[np.intp]:
    ids = [
        lay.frame_id
        for lay in synthesizer.layouts
        if lay.protection and lay.protection.has_checksum
    ]
    return np.flatnonzero(np.isin(frames.frame_id, ids) & ~frames.is_extended)


def test_a_corrupted_bit_in_any_protected_frame_fails_its_checksum(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    frames = synthesizer.synthesize(0.0, 0.5, {}, vehicle_ids=[0]).for_vehicle(0)
    assert synthesizer.bus_layout.checksum_ok(frames).all()
    rows = _protected_rows(vehicle_can, synthesizer, frames)
    rng = np.random.default_rng(0)
    data = frames.data.copy()
    byte = rng.integers(0, 8, len(rows))
    data[rows, byte] ^= (1 << rng.integers(0, 8, len(rows))).astype(np.uint8)
    corrupted = FrameBatch(
        frames.timestamp_s, frames.frame_id, frames.is_extended, frames.bus, frames.length, data
    )
    ok = synthesizer.bus_layout.checksum_ok(corrupted)
    assert not ok[rows].any()
    assert ok[np.setdiff1d(np.arange(len(frames)), rows)].all()


def test_a_valid_payload_sent_under_another_protected_id_fails_through_the_data_id(
    vehicle_can: VehicleCan, synthesizer: FrameSynthesizer
) -> None:
    frames = synthesizer.synthesize(0.0, 0.5, {}, vehicle_ids=[0]).for_vehicle(0)
    protected = [
        lay
        for lay in synthesizer.layouts
        if lay.protection and lay.protection.has_checksum and lay.length == 8
    ]
    source, target = protected[0], protected[1]
    rows = np.flatnonzero(frames.frame_id == source.frame_id)
    moved = frames.take(rows)
    moved = FrameBatch(
        moved.timestamp_s,
        np.full(len(rows), target.frame_id, np.uint32),
        moved.is_extended,
        moved.bus,
        moved.length,
        moved.data,
    )
    assert not synthesizer.bus_layout.checksum_ok(moved).any()
    short = FrameBatch(
        moved.timestamp_s,
        moved.frame_id,
        moved.is_extended,
        moved.bus,
        np.full(len(rows), 4, np.uint8),
        moved.data,
    )
    assert not synthesizer.bus_layout.checksum_ok(short).any()  # too short to verify


def test_fuzzing_known_ids_fails_checksums_while_a_replay_passes_them_but_breaks_the_counter(
    suv_traffic: LabelledFrames, suv_synthesizer: FrameSynthesizer
) -> None:
    layouts = suv_synthesizer.bus_layout
    fuzzed = fuzz(suv_traffic, np.random.default_rng(1), start_s=1.0, duration_s=1.0, ids="known")
    injected = fuzzed.frames.take(fuzzed.is_attack)
    protected = np.isin(
        injected.frame_id,
        [
            lay.frame_id
            for lay in layouts.messages
            if lay.protection and lay.protection.has_checksum
        ],
    )
    ok = layouts.checksum_ok(injected)
    assert protected.sum() > 50 and ok[protected].mean() < 0.02  # 1 in 256 passes by chance
    replayed = replay(
        suv_traffic,
        np.random.default_rng(2),
        capture_start_s=1.0,
        capture_end_s=2.0,
        start_s=5.0,
        can_ids=[0x1A1],
    )
    assert layouts.checksum_ok(replayed.frames).all()
    speed = layouts.message("ESC_VehSpeed")
    assert speed.counter is not None
    rows = replayed.frames.frame_id == 0x1A1
    counters = speed.counter.unpack(payload_words(replayed.frames.data[rows]))
    steps = np.diff(counters) % 16
    assert (steps != 1).sum() >= 2  # the replay's first frame, and the first genuine one after
