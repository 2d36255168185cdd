"""Once the bus is known to be fuzzed, the ECUs' reaction (new payloads at their genuine period)
is not raised as more intrusion; the fuzzing frames still are, and nothing changes on a bus that
was never fuzzed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.edge import IdsModel, score_capture, train_model
from drivetrain.edge.ids.reaction import BURST_IDS, FuzzingContext
from drivetrain.sim.can import FrameSynthesizer, LabelledFrames, fuzz, load_vehicle_can
from drivetrain.sim.can.throughput import random_vss_values


@pytest.fixture(scope="module")
def synth() -> FrameSynthesizer:
    can = load_vehicle_can("compact_bev")
    return FrameSynthesizer(can.database, can.signal_map, seed=5)


def _drive(synth: FrameSynthesizer, start_s: float, seconds: float) -> LabelledFrames:
    values = random_vss_values(synth, 1, np.random.default_rng(3))
    return LabelledFrames.benign(
        synth.synthesize(start_s, start_s + seconds, values).for_vehicle(0)
    )


@pytest.fixture(scope="module")
def model(synth: FrameSynthesizer) -> IdsModel:
    return train_model([_drive(synth, s, 6.0).frames for s in (0.0, 50.0, 90.0)])


def _react(frames: FrameBatch, after_s: float) -> tuple[FrameBatch, np.ndarray]:
    """The busiest id answers from ``after_s`` on with a first byte it never sent (every bit
    inverted), at its own period: an ECU's reaction."""
    ids, counts = np.unique(frames.frame_id, return_counts=True)
    busiest = ids[np.argmax(counts)]
    changed = (frames.frame_id == busiest) & (frames.timestamp_s >= after_s)
    data = frames.data.copy()
    data[changed, 0] ^= 0xFF
    return dataclasses.replace(frames, data=data), changed


def test_the_reaction_after_fuzzing_is_not_raised_but_the_fuzzing_is(
    synth: FrameSynthesizer, model: IdsModel
) -> None:
    fuzzed = fuzz(
        _drive(synth, 200.0, 6.0), np.random.default_rng(5), start_s=202.0, duration_s=1.0
    )
    frames, reaction = _react(fuzzed.frames, 203.0)
    scored = model.stream().score(frames)
    assert reaction.sum() > 50
    assert not scored.alert[reaction].any()
    figures = score_capture(model, frames, fuzzed.is_attack)
    assert figures.recall > 0.95
    assert figures.precision > 0.95


def test_the_same_payload_change_without_fuzzing_is_raised(
    synth: FrameSynthesizer, model: IdsModel
) -> None:
    frames, changed = _react(_drive(synth, 200.0, 6.0).frames, 203.0)
    scored = model.stream().score(frames)
    assert scored.alert[changed].mean() > 0.9


def test_a_few_unknown_ids_do_not_open_the_context() -> None:
    context = FuzzingContext()
    keys = np.arange(BURST_IDS - 1, dtype=np.int64) + 0x700
    context.update(np.linspace(0.0, 0.5, len(keys)), keys)
    # the same ids again, and a new one more than a second later: no burst
    context.update(np.array([0.6, 2.0]), np.array([0x700, 0x7AA], np.int64))
    assert not context.covers(np.array([5.0])).any()
    context.update(np.array([2.1, 2.2]), np.array([0x7AB, 0x7AC], np.int64))
    assert context.covers(np.array([2.2, 5.0])).all()
    assert not context.covers(np.array([2.15])).any()
