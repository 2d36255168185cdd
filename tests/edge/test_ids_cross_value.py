"""The cross-value detector: a state bit learned to follow the *value* of another ECU's state
byte (a reverse light and the selected gear, an enumeration with no single bit equal to the
light) — a masquerade that sends a payload the ECU also sends legitimately, at its exact period,
is caught by its contradiction with the gear; a benign drive with gear changes is not."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import BadInputError
from drivetrain.edge import IdsModel, score_capture, train_model
from drivetrain.edge.ids.crossbit import CrossBitDetector
from drivetrain.edge.ids.crossvalue import CrossValueDetector

GEARS = (0, 64, 96, 32)  # park, neutral, drive, reverse (reverse: 0x20 alone)
LIGHT, GEAR_A, GEAR_B, GEAR_C, NOISE = 0x0D0, 0x0C0, 0x295, 0x274, 0x100


def _drive(
    seed: int,
    seconds: float,
    *,
    forged: tuple[float, float] | None = None,
    gears: tuple[int, ...] = GEARS,
) -> tuple[FrameBatch, npt.NDArray[np.bool_]]:
    """Five ids at 10 ms; the gear changes every few seconds; the light id's byte 2 bit 0x08 is
    on in reverse. ``forged``: in that window the light frames say "off" whatever the gear."""
    rng = np.random.default_rng(seed)
    ticks = np.arange(0.0, seconds, 0.01)
    gear = np.zeros(len(ticks), np.uint8)
    at = 0
    while at < len(ticks):
        span = int(rng.integers(150, 400))
        gear[at : at + span] = gears[int(rng.integers(0, len(gears)))]
        at += span
    rows, times, attack = [], [], []
    for i, t in enumerate(ticks):
        g = int(gear[i])
        light = 0x0C if g == 32 else 0x04
        forged_now = forged is not None and forged[0] <= t < forged[1]
        if forged_now:
            light = 0x04
        counter = (i * 8) & 0xF8
        frames = [
            (LIGHT, [counter, 0x71, light, 0x60, int(rng.integers(0, 256)), 2, 0x13, 0]),
            (GEAR_A, [g, 0, 0, 0, 0, 0, 0, 0]),
            (GEAR_B, [0, 0, 0, 0, 0, 0, g >> 2, 0]),
            (GEAR_C, [0, 0, 0, 0, 0, 0, 0x80 | {0: 1, 64: 5, 96: 13, 32: 6}[g], 0]),
            (NOISE, [int(v) for v in rng.integers(0, 256, 8)]),
        ]
        for k, (fid, data) in enumerate(frames):
            rows.append((fid, data))
            times.append(t + k * 1e-4 + float(rng.uniform(0, 5e-5)))
            attack.append(forged_now and fid == LIGHT and g == 32)
    n = len(rows)
    batch = FrameBatch(
        timestamp_s=np.array(times),
        frame_id=np.array([r[0] for r in rows], np.uint32),
        is_extended=np.zeros(n, np.bool_),
        bus=np.zeros(n, np.uint16),
        length=np.full(n, 8, np.uint8),
        data=np.array([r[1] for r in rows], np.uint8),
    )
    return batch, np.array(attack)


def _light_partners(model: IdsModel) -> set[int]:
    detector = model.detectors[0]
    assert isinstance(detector, CrossValueDetector)
    light_row = int(model.ids.rows(np.array([LIGHT]))[0])
    return {
        int(model.ids.keys[y])
        for x, xb, y, _ in detector.rules.tolist()
        if x == light_row and xb == 20
    }


def test_a_rule_only_one_drive_shows_is_dropped_when_two_drives_are_asked_for() -> None:
    no_reverse = GEARS[:3]
    reverse_once = _drive(1, 40.0)[0]
    others = [_drive(s, 40.0, gears=no_reverse)[0] for s in (2, 3)]
    assert _light_partners(
        train_model([reverse_once, *others], detectors=("cross_value",), rule_drives=1)
    ) >= {GEAR_A, GEAR_B, GEAR_C}
    assert not _light_partners(
        train_model([reverse_once, *others], detectors=("cross_value",), rule_drives=2)
    )
    # a copy of the one drive that reverses is still one drive
    assert not _light_partners(
        train_model(
            [reverse_once, reverse_once, others[0]], detectors=("cross_value",), rule_drives=2
        )
    )
    # two drives that reverse keep the rule
    twice = [_drive(s, 40.0)[0] for s in (1, 2)] + [others[1]]
    assert _light_partners(train_model(twice, detectors=("cross_value",), rule_drives=2)) >= {
        GEAR_A,
        GEAR_B,
        GEAR_C,
    }


def _light_bit_partners(model: IdsModel) -> set[tuple[int, int, int]]:
    """The cross-signal rules of the light bit: (partner id, partner bit, inverted)."""
    detector = model.detectors[0]
    assert isinstance(detector, CrossBitDetector)
    light_row = int(model.ids.rows(np.array([LIGHT]))[0])
    return {
        (int(model.ids.keys[detector.columns[col][0]]), int(detector.columns[col][1]), inv)
        for x, xb, col, inv in detector.rules.tolist()
        if x == light_row and xb == 20
    }


def test_a_cross_signal_rule_only_one_drive_shows_is_dropped_when_two_drives_are_asked_for() -> (
    None
):
    # the light bit equals bit 0x02 of GEAR_C's byte 6 (reverse code 6) and is the inverse of
    # its bit 0x01: a bit-to-bit relation, which only a drive that reverses shows
    reverse_bits = {(GEAR_C, 54, 0), (GEAR_C, 55, 1)}
    reverse_once = _drive(1, 40.0)[0]
    others = [_drive(s, 40.0, gears=GEARS[:3])[0] for s in (2, 3)]
    train = [reverse_once, *others]
    assert _light_bit_partners(
        train_model(train, detectors=("cross_signal",), rule_drives=1)
    ) >= reverse_bits
    assert not _light_bit_partners(train_model(train, detectors=("cross_signal",), rule_drives=2))
    twice = [_drive(s, 40.0)[0] for s in (1, 2)] + [others[1]]
    assert _light_bit_partners(
        train_model(twice, detectors=("cross_signal",), rule_drives=2)
    ) >= reverse_bits


def test_rule_drives_below_one_is_refused() -> None:
    with pytest.raises(BadInputError, match="rule_drives"):
        train_model([_drive(1, 5.0)[0]] * 3, detectors=("cross_value",), rule_drives=0)


def _model(detectors: tuple[str, ...]) -> IdsModel:
    return train_model([_drive(s, 40.0)[0] for s in (1, 2, 3)], detectors=detectors)


def test_the_light_is_learned_from_the_gear_values_and_a_forged_off_is_flagged() -> None:
    model = _model(("cross_value",))
    detector = model.detectors[0]
    assert isinstance(detector, CrossValueDetector)
    light_row = int(model.ids.rows(np.array([LIGHT]))[0])
    partners = {
        int(model.ids.keys[y])
        for x, xb, y, _ in detector.rules.tolist()
        if x == light_row and xb == 20
    }
    assert partners >= {GEAR_A, GEAR_B, GEAR_C}
    frames, attack = _drive(9, 40.0, forged=(5.0, 35.0))
    assert attack.sum() > 50
    score = score_capture(model, frames, attack)
    assert score.auroc is not None and score.auroc > 0.99
    assert score.recall > 0.95 and score.precision > 0.95


def test_a_benign_drive_never_seen_raises_no_cross_value_alert() -> None:
    model = _model(("cross_value",))
    frames, attack = _drive(11, 40.0)
    assert not attack.any()
    assert not model.stream().score(frames).alert.any()


def test_bit_to_bit_consistency_alone_misses_the_forged_light() -> None:
    frames, attack = _drive(9, 40.0, forged=(5.0, 35.0))
    score = score_capture(_model(("cross_signal",)), frames, attack)
    assert score.recall < 0.5


def test_the_rules_and_tables_round_trip_through_the_model_file(tmp_path: object) -> None:
    from pathlib import Path

    model = _model(("cross_value",))
    path = Path(str(tmp_path)) / "m.npz"
    model.save(path)
    again = IdsModel.load(path)
    frames, _ = _drive(9, 10.0, forged=(2.0, 8.0))
    assert np.array_equal(model.stream().score(frames).score, again.stream().score(frames).score)
