"""Range and rate checks on DBC-decoded signals: trained on a real Toyota capture (comma2k19
excerpt) with its opendbc DBC, they flag a forged vehicle speed and stay quiet on the benign
traffic, and the model file carries them (the DBC included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivetrain.core.can import FrameBatch, load_dbc, read_capture
from drivetrain.edge import IdsModel, IdsModelError, score_capture, train_model
from drivetrain.edge.ids.signals import SignalRangeRateDetector

DATA = Path(__file__).resolve().parents[1] / "data" / "captures"
SPEED_ID = 180  # SPEED.SPEED: 47|16@0+ (0.01,0) [0|250] km/h


@pytest.fixture(scope="module")
def frames() -> FrameBatch:
    f = read_capture(DATA / "comma2k19_head3000.csv").frames
    return f.take(np.argsort(f.timestamp_s, kind="stable"))


@pytest.fixture(scope="module")
def dbc():  # type: ignore[no-untyped-def]
    return load_dbc(DATA / "toyota_new_mc_pt_generated.dbc").database


def _forge_speed(frames: FrameBatch, kmh: float) -> tuple[FrameBatch, np.ndarray]:
    """Overwrite SPEED in the SPEED frames of the last third of the capture."""
    data = frames.data.copy()
    target = np.flatnonzero(frames.frame_id == SPEED_ID)
    target = target[target > 2 * len(frames) // 3][:5]
    raw = round(kmh / 0.01)
    data[target, 5], data[target, 6] = raw >> 8, raw & 0xFF
    forged = FrameBatch(
        frames.timestamp_s, frames.frame_id, frames.is_extended, frames.bus, frames.length, data
    )
    attack = np.zeros(len(frames), np.bool_)
    attack[target] = True
    return forged, attack


def _signal_model(frames: FrameBatch, dbc) -> IdsModel:  # type: ignore[no-untyped-def]
    return train_model([frames], detectors=("signal_range",), dbc=dbc)


def test_the_detector_learns_ranges_and_rates_from_benign_traffic(frames, dbc) -> None:  # type: ignore[no-untyped-def]
    model = _signal_model(frames, dbc)
    (d,) = [x for x in model.detectors if isinstance(x, SignalRangeRateDetector)]
    speed = d.slots.index(("SPEED", "SPEED"))
    assert 29.0 < d.low[speed] <= d.high[speed] < 38.0
    assert d.range_on[speed] is np.True_ or bool(d.use_declared[speed])
    assert bool(d.use_declared[speed])  # the DBC declares [0|250] and benign traffic keeps to it
    assert bool(d.rate_on[speed]) and 0 < d.rate_limit[speed] < 100.0
    assert model.meta["detectors"] == ["signal_range"]


@pytest.mark.parametrize("kmh", [120.0, 300.0])  # a jump inside the DBC's range, and past it
def test_a_forged_speed_is_flagged_and_benign_frames_are_not(frames, dbc, kmh: float) -> None:  # type: ignore[no-untyped-def]
    model = _signal_model(frames, dbc)
    assert not model.stream().score(frames).alert.any()
    forged, attack = _forge_speed(frames, kmh)
    scored = model.stream().score(forged)
    assert scored.alert[attack].all()
    assert not scored.alert[~attack].any()
    names = model.detector_names
    assert {names[i] for i in scored.detector[attack]} == {"signal_range"}
    result = score_capture(model, forged, attack)
    assert result.recall == 1.0 and result.false_alerts == 0
    assert result.us_per_frame < 10.0, result.us_per_frame


def test_without_a_dbc_the_detector_is_absent(frames) -> None:  # type: ignore[no-untyped-def]
    model = train_model([frames])
    assert "signal_range" not in model.detector_names


def test_the_model_file_round_trips_with_its_dbc(frames, dbc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = train_model([frames], dbc=dbc)
    path = tmp_path / "ids.npz"
    model.save(path)
    loaded = IdsModel.load(path)
    assert loaded.detector_names == model.detector_names
    forged, attack = _forge_speed(frames, 120.0)
    a = model.stream().score(forged)
    b = loaded.stream().score(forged)
    np.testing.assert_allclose(a.score, b.score)
    assert b.alert[attack].all()


def test_bench_ids_passes_the_dbc_through(frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from drivetrain.cli import app
    from drivetrain.core.can import FrameLabels, write_capture

    forged, attack = _forge_speed(frames, 120.0)
    train, test = tmp_path / "benign.csv", tmp_path / "forged.csv"
    benign_labels = FrameLabels(np.zeros(len(frames), np.int32), ("Benign",))
    write_capture(train, frames, capture_format="road-csv", labels=benign_labels)
    write_capture(
        test,
        forged,
        capture_format="road-csv",
        labels=FrameLabels(attack.astype(np.int32), ("Benign", "Speed")),
    )
    out = tmp_path / "bench.json"
    args = ["bench", "ids", "--train", str(train), "--test", str(test), "--json", str(out)]
    result = CliRunner().invoke(app, [*args, "--dbc", str(DATA / "toyota_new_mc_pt_generated.dbc")])
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())["captures"]["forged"]
    assert figures["recall"] == 1.0 and figures["precision"] == 1.0
    assert figures["us_per_frame"] < 10.0
    missing = CliRunner().invoke(app, [*args, "--dbc", str(tmp_path / "none.dbc")])
    assert missing.exit_code != 0 and "no such file" in missing.output


def test_a_speed_the_ecu_sent_earlier_is_caught_only_with_the_dbc(frames, dbc) -> None:  # type: ignore[no-untyped-def]
    # 29.41 km/h: a value (and bytes) of this drive's first frames, forged while the car is at
    # ~37 km/h; no byte or bit is new, only the jump gives it away
    forged, attack = _forge_speed(frames, 29.41)
    without = score_capture(train_model([frames]), forged, attack)
    with_dbc = score_capture(train_model([frames], dbc=dbc), forged, attack)
    assert without.recall == 0.0 and without.auroc < 0.8
    # the first frames of the forgery jump; the last one lies 0.1 s after the last genuine
    # frame, close enough in rate to pass
    assert with_dbc.recall >= 0.8 and with_dbc.auroc > 0.99
    assert with_dbc.us_per_frame < 10.0


def test_a_model_file_with_a_broken_dbc_is_refused(frames, dbc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import io

    model = train_model([frames], detectors=("signal_range",), dbc=dbc)
    good = tmp_path / "ids.npz"
    model.save(good)
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["signal_range.dbc"] = np.frombuffer(b"BO_ 180 SPEED: 8 XXX\n SG_ broken", np.uint8)
    bad = tmp_path / "bad.npz"
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(IdsModelError, match="malformed"):
        IdsModel.load(bad)
    arrays = {k: v for k, v in arrays.items() if k != "signal_range.dbc"}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(IdsModelError, match="malformed"):
        IdsModel.load(bad)
