"""The in-vehicle intrusion detector on the simulator's labelled attacks: trained on benign
traffic only, it flags flooding, fuzzing, replay, spoofing and masquerade, and stays quiet on a
benign drive it has never seen."""

from __future__ import annotations

import numpy as np
import pytest

from drivetrain.core.can import FrameBatch
from drivetrain.edge import IdsModel, IdsModelError, events_from, score_capture, train_model
from drivetrain.sim.can import (
    FrameSynthesizer,
    LabelledFrames,
    flood,
    fuzz,
    load_vehicle_can,
    masquerade,
    replay,
    spoof,
)
from drivetrain.sim.can.throughput import random_vss_values


@pytest.fixture(scope="module")
def synth() -> FrameSynthesizer:
    can = load_vehicle_can("suv_bev")
    return FrameSynthesizer(can.database, can.signal_map, seed=21)


def _drive(synth: FrameSynthesizer, start_s: float, seconds: float) -> LabelledFrames:
    values = random_vss_values(synth, 1, np.random.default_rng(4))
    frames = synth.synthesize(start_s, start_s + seconds, values).for_vehicle(0)
    return LabelledFrames.benign(frames, vehicle="DTSUV000000000021")


@pytest.fixture(scope="module")
def model(synth: FrameSynthesizer) -> IdsModel:
    return train_model([_drive(synth, 0.0, 8.0).frames, _drive(synth, 100.0, 8.0).frames,
                        _drive(synth, 200.0, 8.0).frames])


def _recall_and_false(model: IdsModel, traffic: LabelledFrames) -> tuple[float, int]:
    s = score_capture(model, traffic.frames, traffic.is_attack, batch_frames=1024)
    return s.recall, s.false_alerts


def test_a_benign_drive_never_seen_raises_no_alert(synth: FrameSynthesizer, model: IdsModel) -> None:
    unseen = _drive(synth, 500.0, 10.0)
    scored = model.stream().score(unseen.frames)
    assert not scored.alert.any()


@pytest.mark.parametrize(
    "attack",
    ["flood", "fuzz_random", "fuzz_known", "spoof", "masquerade", "replay"],
)
def test_each_attack_class_of_the_simulator_is_flagged(
    synth: FrameSynthesizer, model: IdsModel, attack: str
) -> None:
    base = _drive(synth, 300.0, 10.0)
    rng = np.random.default_rng(7)
    layouts = synth.bus_layout
    if attack == "flood":
        traffic = flood(base, rng, start_s=302.0, duration_s=1.0)
    elif attack == "fuzz_random":
        traffic = fuzz(base, rng, start_s=302.0, duration_s=1.0)
    elif attack == "fuzz_known":
        traffic = fuzz(base, rng, start_s=302.0, duration_s=1.0, ids="known")
    elif attack == "spoof":
        traffic = spoof(base, rng, layouts, message="ESC_VehSpeed", values={"VehSpeed": 55.0},
                        start_s=302.0, duration_s=2.0)
    elif attack == "masquerade":
        traffic = masquerade(base, rng, layouts, message="ESC_VehSpeed",
                             values={"VehSpeed": 55.0}, start_s=302.0, duration_s=2.0)
    else:
        traffic = replay(base, rng, capture_start_s=300.5, capture_end_s=301.5, start_s=305.0,
                         can_ids=[0x1A1])
    recall, false_alerts = _recall_and_false(model, traffic)
    # a replayed frame that lands where the genuine sequence would have been is invisible
    assert recall >= (0.75 if attack == "replay" else 0.9), (attack, recall)
    assert false_alerts <= 2, (attack, false_alerts)


def test_scores_do_not_depend_on_how_the_bus_is_cut_into_batches(
    synth: FrameSynthesizer, model: IdsModel
) -> None:
    traffic = fuzz(_drive(synth, 300.0, 4.0), np.random.default_rng(3), start_s=301.0,
                   duration_s=1.0, ids="known")
    whole = model.stream().score(traffic.frames).alert
    stream = model.stream()
    parts = []
    for start in range(0, len(traffic.frames), 333):
        parts.append(stream.score(traffic.frames.take(np.arange(start, min(start + 333, len(traffic.frames))))).alert)
    assert (np.concatenate(parts) == whole).mean() > 0.999


def test_events_carry_the_autosar_fields_and_group_frames_of_one_id_within_a_second(
    synth: FrameSynthesizer, model: IdsModel
) -> None:
    traffic = flood(_drive(synth, 300.0, 6.0), np.random.default_rng(1), start_s=301.0,
                    duration_s=0.5, can_id=0x7F0)
    scored = model.stream().score(traffic.frames)
    events = events_from(model, traffic.frames, scored)
    flood_events = [e for e in events if e.can_id == "0x7F0"]
    assert len(flood_events) == 1
    event = flood_events[0]
    assert event.sensor == "unknown_id" and event.event_id == 0x1001
    assert event.count == int((traffic.frames.frame_id == 0x7F0).sum())
    assert 301.0 <= event.first_s <= event.last_s <= 301.5
    assert event.evidence and event.evidence[0].split()[1].startswith("7F0#")
    assert event.to_dict()["signature"] == "unknown_id:0x7F0"


def test_the_model_file_round_trips_and_scores_alike(
    tmp_path: pytest.TempPathFactory, synth: FrameSynthesizer, model: IdsModel
) -> None:
    path = tmp_path / "m.npz"  # type: ignore[operator]
    model.save(path)
    again = IdsModel.load(path)
    traffic = fuzz(_drive(synth, 300.0, 3.0), np.random.default_rng(2), start_s=301.0, duration_s=1.0)
    a = model.stream().score(traffic.frames)
    b = again.stream().score(traffic.frames)
    assert np.array_equal(a.score, b.score)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip", b"PK\x03\x04" + bytes(40)],
)
def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path / "bad.npz"  # type: ignore[operator]
    path.write_bytes(content)
    with pytest.raises(IdsModelError, match="bad.npz"):
        IdsModel.load(path)


def test_a_model_of_another_version_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    import io
    import json

    path = tmp_path / "v9.npz"  # type: ignore[operator]
    buffer = io.BytesIO()
    header = json.dumps({"format": "drivetrain-ids-model", "version": 9}).encode()
    np.savez(buffer, header=np.frombuffer(header, np.uint8), ids=np.zeros(1, np.int64))
    path.write_bytes(buffer.getvalue())
    with pytest.raises(IdsModelError, match="version 9"):
        IdsModel.load(path)


def test_training_without_frames_is_refused() -> None:
    from drivetrain.core.errors import BadInputError

    with pytest.raises(BadInputError, match="at least 100 benign frames"):
        train_model([FrameBatch.empty()])
