"""The receiver's end-to-end check in core: counters read where the DBC puts them, a replay or
a dropped frame breaks the sequence, and checking in chunks equals checking whole."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.can import CRC8_AUTOSAR_H2F, CRC8_SAE_J1850, E2EChecker
from drivetrain.sim.can import FrameSynthesizer, load_vehicle_can, replay
from drivetrain.sim.can.ground_truth import LabelledFrames


@pytest.fixture(scope="module", params=["compact_bev", "suv_bev"])
def synth(request: pytest.FixtureRequest) -> FrameSynthesizer:
    can = load_vehicle_can(request.param)
    return FrameSynthesizer(can.database, can.signal_map, seed=3)


def test_crc8_catalogue_check_values() -> None:
    assert CRC8_SAE_J1850.compute(b"123456789") == 0x4B
    assert CRC8_AUTOSAR_H2F.compute(b"123456789") == 0xDF


def test_counters_are_read_where_the_dbc_puts_them_in_both_byte_orders(
    synth: FrameSynthesizer,
) -> None:
    frames = synth.synthesize(0.0, 1.0, {}, vehicle_ids=[0]).for_vehicle(0)
    from drivetrain.sim.can.layout import payload_words

    checked = 0
    for layout in synth.layouts:
        if layout.protection is None or layout.counter is None:
            continue
        rows = np.flatnonzero(frames.frame_id == layout.frame_id)
        expected = layout.counter.unpack(payload_words(frames.data[rows]))
        assert np.array_equal(layout.protection.counters(frames.data[rows]), expected)
        checked += 1
    assert checked >= 2


def test_genuine_traffic_passes_and_chunks_give_the_same_verdicts(
    synth: FrameSynthesizer,
) -> None:
    frames = synth.synthesize(0.0, 2.0, {}, vehicle_ids=[0]).for_vehicle(0)
    checker = E2EChecker(
        {
            (m.frame_id, m.is_extended): m.protection
            for m in synth.layouts
            if m.protection is not None
        }
    )
    whole = checker.check(frames.frame_id, frames.is_extended, frames.length, frames.data)
    assert not whole.bad_checksum.any() and not whole.bad_counter.any()
    checker.reset()
    half = len(frames) // 2
    first = frames.take(np.arange(half))
    second = frames.take(np.arange(half, len(frames)))
    a = checker.check(first.frame_id, first.is_extended, first.length, first.data)
    b = checker.check(second.frame_id, second.is_extended, second.length, second.data)
    assert not np.concatenate([a.bad_counter, b.bad_counter]).any()


def test_a_replayed_frame_keeps_its_checksum_but_breaks_the_counter() -> None:
    can = load_vehicle_can("suv_bev")
    synth = FrameSynthesizer(can.database, can.signal_map, seed=5)
    traffic = LabelledFrames.benign(synth.synthesize(0.0, 6.0, {}, vehicle_ids=[0]).for_vehicle(0), vehicle="V")
    attacked = replay(
        traffic,
        np.random.default_rng(2),
        capture_start_s=1.0,
        capture_end_s=2.0,
        start_s=4.0,
        can_ids=[0x1A1],
    )
    checker = E2EChecker.from_messages(list(can.database.messages))
    f = attacked.frames
    verdict = checker.check(f.frame_id, f.is_extended, f.length, f.data)
    assert not verdict.bad_checksum.any()
    attack_rows = np.flatnonzero(attacked.is_attack)
    # a replayed frame right after a genuine one jumps back; runs of replayed frames continue
    # their own old sequence, so not every one of them breaks it
    assert verdict.bad_counter[attack_rows].mean() > 0.5
    assert not verdict.bad_counter[f.timestamp_s < 4.0].any()


def test_a_frame_too_short_for_its_protection_fails_both_checks(synth: FrameSynthesizer) -> None:
    frames = synth.synthesize(0.0, 0.2, {}, vehicle_ids=[0]).for_vehicle(0)
    protected = next(m for m in synth.layouts if m.protection is not None)
    rows = np.flatnonzero(frames.frame_id == protected.frame_id)
    checker = E2EChecker({(protected.frame_id, protected.is_extended): protected.protection})
    short = np.zeros(len(rows), np.uint8)
    v = checker.check(frames.frame_id[rows], frames.is_extended[rows], short, frames.data[rows])
    assert v.bad_checksum.all() and v.bad_counter.all()
