"""Flooding, fuzzing, replay and suspension: the ground truth matches what reached the bus."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.sim.can import LabelledFrames, flood, fuzz, replay, suspend


def _injected(traffic: LabelledFrames, index: int) -> FrameBatch:
    return traffic.frames.take(traffic.attack == index)


def _genuine(traffic: LabelledFrames) -> FrameBatch:
    return traffic.frames.take(~traffic.is_attack)


def _same(a: FrameBatch, b: FrameBatch) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        for f in ("timestamp_s", "frame_id", "is_extended", "bus", "length", "data")
    )


def _assert_record_matches_frames(traffic: LabelledFrames, index: int) -> None:
    record = traffic.records[index]
    frames = _injected(traffic, index)
    assert len(frames) == record.injected > 0
    assert record.start_s == frames.timestamp_s.min() and record.end_s == frames.timestamp_s.max()
    assert record.can_ids == tuple(sorted(set(frames.frame_id.tolist())))
    assert set(np.array(traffic.labels.as_strings())[traffic.attack == index]) == {record.label}
    assert (np.diff(traffic.frames.timestamp_s) >= 0).all()


def test_flooding_injects_id_zero_every_tenth_to_third_of_a_millisecond(
    suv_traffic: LabelledFrames,
) -> None:
    attacked = flood(suv_traffic, np.random.default_rng(1), start_s=2.0, duration_s=0.5)
    _assert_record_matches_frames(attacked, 0)
    frames = _injected(attacked, 0)
    gaps = np.diff(frames.timestamp_s)
    assert gaps.min() >= 1e-4 and gaps.max() <= 3e-4
    assert 0.5 / 3e-4 <= len(frames) <= 0.5 / 1e-4 + 1
    assert (frames.frame_id == 0).all() and not frames.data.any() and (frames.length == 8).all()
    assert attacked.records[0].kind == "flooding" and attacked.records[0].label == "Flooding"
    assert attacked.records[0].vehicle == "DTSUV000000000007"
    assert 2.0 <= attacked.records[0].start_s and attacked.records[0].end_s < 2.5
    assert _same(_genuine(attacked), suv_traffic.frames)


def test_fuzzing_with_random_ids_records_every_id_it_injected(suv_traffic: LabelledFrames) -> None:
    attacked = fuzz(suv_traffic, np.random.default_rng(2), start_s=1.0, duration_s=1.0)
    _assert_record_matches_frames(attacked, 0)
    frames = _injected(attacked, 0)
    assert len(set(frames.frame_id.tolist())) > 500 and frames.frame_id.max() <= 0x7FF
    assert len({bytes(row) for row in frames.data}) == len(frames)  # random payloads
    assert _same(_genuine(attacked), suv_traffic.frames)


def test_fuzzing_known_ids_puts_random_payloads_on_the_genuine_ids_and_lengths(
    suv_traffic: LabelledFrames,
) -> None:
    attacked = fuzz(suv_traffic, np.random.default_rng(3), start_s=1.0, duration_s=1.0, ids="known")
    _assert_record_matches_frames(attacked, 0)
    frames = _injected(attacked, 0)
    genuine = {
        (i, e, n)
        for i, e, n in zip(
            suv_traffic.frames.frame_id.tolist(),
            suv_traffic.frames.is_extended.tolist(),
            suv_traffic.frames.length.tolist(),
        )
    }
    injected = set(
        zip(frames.frame_id.tolist(), frames.is_extended.tolist(), frames.length.tolist())
    )
    assert injected <= genuine and len(injected) > 20
    assert any(e for _, e, _ in injected)  # 29-bit ids keep their flag


def test_replay_resends_the_recorded_frames_later_with_their_spacing(
    suv_traffic: LabelledFrames,
) -> None:
    attacked = replay(
        suv_traffic,
        np.random.default_rng(4),
        capture_start_s=1.0,
        capture_end_s=1.5,
        start_s=6.0,
        can_ids=[0x1A1, 0x0F4],
    )
    _assert_record_matches_frames(attacked, 0)
    recorded = suv_traffic.frames.take(
        (suv_traffic.frames.timestamp_s >= 1.0)
        & (suv_traffic.frames.timestamp_s < 1.5)
        & np.isin(suv_traffic.frames.frame_id, [0x1A1, 0x0F4])
    )
    frames = _injected(attacked, 0)
    assert np.array_equal(frames.data, recorded.data) and np.array_equal(
        frames.frame_id, recorded.frame_id
    )
    shift = frames.timestamp_s - recorded.timestamp_s
    assert shift.min() >= 5.0 and shift.max() <= 5.0 + 5e-5
    assert attacked.records[0].can_ids == (0x0F4, 0x1A1)


def test_suspension_removes_every_frame_of_the_id_in_the_window_and_nothing_else(
    suv_traffic: LabelledFrames,
) -> None:
    before = suv_traffic.frames
    attacked = suspend(suv_traffic, can_id=0x1B0, start_s=3.0, duration_s=2.0)
    record = attacked.records[0]
    in_window = (
        (before.frame_id == 0x1B0) & (before.timestamp_s >= 3.0) & (before.timestamp_s < 5.0)
    )
    assert record.kind == "suspension" and record.removed == int(in_window.sum()) == 200
    assert record.injected == 0 and record.can_ids == (0x1B0,)
    assert (
        record.start_s == before.timestamp_s[in_window].min()
        and record.end_s == before.timestamp_s[in_window].max()
    )
    after = attacked.frames
    assert not (
        (after.frame_id == 0x1B0) & (after.timestamp_s >= 3.0) & (after.timestamp_s < 5.0)
    ).any()
    assert _same(after, before.take(~in_window))
    assert not attacked.is_attack.any()  # a suspension labels no frame: its frames are gone


def test_attacks_compose_and_each_frame_points_at_its_own_record(
    suv_traffic: LabelledFrames,
) -> None:
    rng = np.random.default_rng(5)
    traffic = flood(suv_traffic, rng, start_s=1.0, duration_s=0.2)
    traffic = suspend(traffic, can_id=0x1A0, start_s=2.0, duration_s=1.0)
    traffic = fuzz(traffic, rng, start_s=4.0, duration_s=0.2)
    traffic = replay(traffic, rng, capture_start_s=0.0, capture_end_s=1.2, start_s=8.0)
    assert [r.kind for r in traffic.records] == ["flooding", "suspension", "fuzzing", "replay"]
    for index in (0, 2, 3):
        _assert_record_matches_frames(traffic, index)
    # the replay re-sent the flood frames it recorded: on the bus they are replayed frames now
    assert (_injected(traffic, 3).frame_id == 0).sum() == (
        (_injected(traffic, 0).timestamp_s < 1.2).sum()
    )


def test_the_same_seed_injects_the_same_frames(suv_traffic: LabelledFrames) -> None:
    def run(seed: int) -> LabelledFrames:
        rng = np.random.default_rng(seed)
        traffic = fuzz(suv_traffic, rng, start_s=1.0, duration_s=0.3)
        return flood(traffic, rng, start_s=2.0, duration_s=0.3)

    one, two, other = run(9), run(9), run(10)
    assert _same(one.frames, two.frames) and one.records == two.records
    assert np.array_equal(one.attack, two.attack)
    assert not _same(one.frames, other.frames)


def test_bad_attack_parameters_are_refused_naming_the_parameter(
    suv_traffic: LabelledFrames,
) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="start_s >= 0 and duration_s > 0"):
        flood(suv_traffic, rng, start_s=1.0, duration_s=0.0)
    with pytest.raises(ValueError, match="interval_s must be"):
        flood(suv_traffic, rng, start_s=1.0, duration_s=1.0, interval_s=(0.0, 1e-4))
    with pytest.raises(ValueError, match="can_id 0x800 is outside the standard id range"):
        flood(suv_traffic, rng, start_s=1.0, duration_s=1.0, can_id=0x800)
    with pytest.raises(ValueError, match="payload must be at most 8 bytes"):
        flood(suv_traffic, rng, start_s=1.0, duration_s=1.0, payload=bytes(9))
    with pytest.raises(ValueError, match="ids must be 'random' or 'known'"):
        fuzz(suv_traffic, rng, start_s=1.0, duration_s=1.0, ids="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs genuine frames"):
        fuzz(
            LabelledFrames.benign(FrameBatch.empty()), rng, start_s=1.0, duration_s=1.0, ids="known"
        )
    with pytest.raises(ValueError, match="must not precede capture_end_s"):
        replay(suv_traffic, rng, capture_start_s=1.0, capture_end_s=3.0, start_s=2.0)
    with pytest.raises(ValueError, match="no frames of the given ids"):
        replay(
            suv_traffic, rng, capture_start_s=1.0, capture_end_s=2.0, start_s=3.0, can_ids=[0x7FF]
        )
    with pytest.raises(ValueError, match="no genuine frame of id 0x7FF"):
        suspend(suv_traffic, can_id=0x7FF, start_s=1.0, duration_s=1.0)
