"""Measured bytes and per-drive coincidences: a temperature byte one unit warmer than every
training drive raises no alert while a temperature forged to its maximum does; one drifting
in small steps from the id's previous frame is no byte novelty while a jump is (its margin is
widened, not dropped, when a held-out drive went past the range); two bits that are merely
constant per drive make no cross-signal rule; copies of one drive are held out together."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.edge import score_capture, train_model
from drivetrain.edge.ids.crossbit import CrossBitDetector
from drivetrain.edge.ids.detectors import ByteValueDetector
from drivetrain.edge.ids.model import _drives
from drivetrain.edge.ids.ordinal import ByteRangeDetector
from drivetrain.edge.ids.stream import IdTable, StreamState, advance, index_batch

TEMP, MODE, OTHER = 0x4E7, 0x0C0, 0x100


def _drive(
    seed: int, temp: int, mode: int, *, forged_at: float | None = None, seconds: float = 20.0
) -> tuple[FrameBatch, npt.NDArray[np.bool_]]:
    """Three ids at 10 ms: a temperature byte wandering by one unit around ``temp``, a mode
    byte constant for the drive, a counter with two random bytes. ``forged_at``: from then on the temperature reads
    0xFF (the ECU's own frames replaced at their period)."""
    rng = np.random.default_rng(seed)
    ticks = np.arange(0.0, seconds, 0.01)
    walk = np.clip(np.cumsum(rng.choice([-1, 0, 0, 0, 0, 0, 0, 0, 1], len(ticks))), -2, 2)
    rows, times, attack = [], [], []
    for i, t in enumerate(ticks):
        forged = forged_at is not None and t >= forged_at
        value = 0xFF if forged else temp + int(walk[i])
        for k, (fid, data) in enumerate(
            (
                (TEMP, [0, 0, 0, 0x12, 3, value, 0, 0]),
                (MODE, [mode, 0, 0, 0, 0, 0, 0, 0]),
                (OTHER, [i & 0xFF, *(int(b) for b in rng.integers(0, 256, 2)), 0, 0, 0, 0, 0]),
            )
        ):
            rows.append(data)
            times.append(t + k * 1e-4)
            attack.append(forged and fid == TEMP)
    n = len(rows)
    batch = FrameBatch(
        timestamp_s=np.array(times),
        frame_id=np.tile(np.array([TEMP, MODE, OTHER], np.uint32), n // 3),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=np.array(rows, np.uint8),
    )
    return batch, np.array(attack)


def _training() -> list[FrameBatch]:
    return [
        _drive(s, temp, mode)[0]
        for s, temp, mode in ((1, 0x70, 0x20), (2, 0x78, 0x60), (3, 0x80, 0x20))
    ]


def test_a_warmer_drive_is_no_alert_and_a_forged_maximum_is() -> None:
    model = train_model(_training())
    warmer, attack = _drive(4, 0x84, 0x20)
    assert not attack.any()
    assert score_capture(model, warmer, attack).false_alerts == 0
    forged, attack = _drive(5, 0x78, 0x20, forged_at=10.0)
    score = score_capture(model, forged, attack)
    assert score.recall == 1.0 and score.false_alerts == 0
    assert score.auroc is not None and score.auroc > 0.99


def test_calibration_widens_the_margin_of_a_byte_that_wandered_on_a_held_out_drive() -> None:
    model = train_model(_training())
    ranges = next(d for d in model.detectors if isinstance(d, ByteRangeDetector))
    row = int(model.ids.rows(np.array([TEMP]))[0])
    # held out, the 0x80 drive went ~6 units past the others' range: twice that, not dropped
    assert ranges.lo[row, 5] <= 0x6E and ranges.hi[row, 5] >= 0x82
    assert 8 <= ranges.margin[row, 5] < 0xFF - ranges.hi[row, 5]
    assert ranges.margin[row, 0] == 0  # a constant byte is not a measurement


def test_bits_constant_per_drive_make_no_cross_signal_rule() -> None:
    # the mode byte's bit 0x40 and a bit of the temperature (0x08: 0x70-0x72 vs 0x78-0x7A) are
    # equal in every frame of these drives, but neither changes inside one drive
    drives = [
        _drive(s, temp, mode)[0]
        for s, temp, mode in ((1, 0x71, 0x20), (2, 0x79, 0x60), (3, 0x71, 0x20), (4, 0x79, 0x60))
    ]
    ids = IdTable(np.concatenate([IdTable.keys_of(d.frame_id, d.is_extended) for d in drives]))
    views = [index_batch(d, ids, StreamState(len(ids) + 1)) for d in drives]
    detector = CrossBitDetector()
    detector.fit(ids, views)
    assert len(detector.rules) == 0


def test_copies_of_one_drive_are_held_out_together() -> None:
    a, b, c = _training()
    copy = a.take(np.arange(len(a)))
    copy.data[::50, 5] = 0x90  # an edited copy: a few frames changed
    assert _drives([a, b, copy, c]) == [[0, 2], [1], [3]]


def _byte_values(drives: list[FrameBatch]) -> tuple[ByteValueDetector, IdTable]:
    ids = IdTable(np.concatenate([IdTable.keys_of(d.frame_id, d.is_extended) for d in drives]))
    detector = ByteValueDetector()
    detector.fit(ids, [index_batch(d, ids, StreamState(len(ids) + 1)) for d in drives])
    return detector, ids


def _temperature_frames(values: list[tuple[int, int]]) -> FrameBatch:
    """TEMP frames 10 ms apart: (temperature byte, byte 3) each."""
    n = len(values)
    data = np.zeros((n, 8), np.uint8)
    data[:, 4] = 3
    data[:, 5] = [t for t, _ in values]
    data[:, 3] = [b for _, b in values]
    return FrameBatch(
        timestamp_s=np.arange(n, dtype=np.float64) * 0.01,
        frame_id=np.full(n, TEMP, np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=data,
    )


def test_a_measured_byte_drifting_in_small_steps_is_no_novelty_and_a_jump_is() -> None:
    detector, ids = _byte_values(_training())
    row = int(ids.rows(np.array([TEMP]))[0])
    assert detector.measured[row, 5] and not detector.measured[row, 3]
    # a warm-up far below every training drive: the first frame has no previous frame to step
    # from, the next ones climb by one or two units, then a jump of six, then back in steps
    temps = [0x40, 0x41, 0x43, 0x43, 0x44, 0x4A, 0x4B]
    batch = _temperature_frames([(t, 0x12) for t in temps])
    assert not detector.seen[row, 5, temps].any()
    novel = detector.score(index_batch(batch, ids, StreamState(len(ids) + 1))) > 0
    assert novel.tolist() == [True, False, False, False, False, True, False]
    # the step is from the id's previous frame of an earlier batch too
    state = StreamState(len(ids) + 1)
    advance(state, index_batch(batch, ids, state))
    later = _temperature_frames([(0x4C, 0x12), (0x55, 0x12)])
    assert (detector.score(index_batch(later, ids, state)) > 0).tolist() == [False, True]


def test_a_byte_that_is_no_measurement_is_novel_however_small_its_step() -> None:
    detector, ids = _byte_values(_training())
    # byte 3 held 0x12 in every training frame: 0x13 after 0x12 is a value the id never sent
    batch = _temperature_frames([(0x78, 0x12), (0x78, 0x13), (0x78, 0x14)])
    novel = detector.score(index_batch(batch, ids, StreamState(len(ids) + 1))) > 0
    assert novel.tolist() == [False, True, True]


def test_held_out_calibration_judges_without_the_step_and_old_files_load_without_it() -> None:
    detector, ids = _byte_values(_training())
    batch = _temperature_frames([(0x40, 0x12), (0x41, 0x12)])
    view = index_batch(batch, ids, StreamState(len(ids) + 1))
    assert (detector.score(view) > 0).tolist() == [True, False]
    assert detector.fired(view, ids) == {(TEMP, 5)}  # both frames count against the byte
    arrays = {k: v for k, v in detector.state().items() if k != "measured"}
    old = ByteValueDetector()
    old.load(arrays)
    assert not old.measured.any() and (old.score(view) > 0).all()
    broken = ByteValueDetector()
    with pytest.raises(ValueError, match="measured has shape"):
        broken.load({**detector.state(), "measured": np.zeros((2, 8), np.bool_)})
