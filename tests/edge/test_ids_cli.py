"""`drivetrain ids train|detect` and `drivetrain bench ids` on ROAD-format captures written
from the simulator's labelled traffic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.core.can import write_capture
from drivetrain.sim.can import FrameSynthesizer, LabelledFrames, fuzz, load_vehicle_can
from drivetrain.sim.can.throughput import random_vss_values

runner = CliRunner()


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("road")
    can = load_vehicle_can("compact_bev")
    synth = FrameSynthesizer(can.database, can.signal_map, seed=2)
    values = random_vss_values(synth, 1, np.random.default_rng(1))
    out = {}
    for name, start in (("drive_a", 0.0), ("drive_b", 50.0), ("drive_c", 90.0), ("attack", 200.0)):
        frames = synth.synthesize(start, start + 6.0, values).for_vehicle(0)
        traffic = LabelledFrames.benign(frames)
        if name == "attack":
            traffic = fuzz(traffic, np.random.default_rng(5), start_s=start + 2.0, duration_s=1.0)
        path = folder / f"{name}.csv"
        write_capture(path, traffic.frames, capture_format="road-csv", labels=traffic.labels)
        out[name] = path
    return out


def test_bench_ids_takes_several_files_per_option_and_writes_the_documented_json(
    captures: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ids.json"
    result = runner.invoke(
        app,
        ["bench", "ids", "--train", str(captures["drive_a"]), str(captures["drive_b"]),
         str(captures["drive_c"]), "--test", str(captures["attack"]), "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    figures = document["captures"]["attack"]
    for key in ("auroc", "precision", "recall", "f1", "latency_s", "us_per_frame", "false_alerts_per_h"):
        assert key in figures
    assert figures["auroc"] > 0.97 and figures["f1"] > 0.9 and figures["latency_s"] < 1.0
    assert document["mean_auroc"] == figures["auroc"]
    assert "attack" in result.output  # the table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test", "x.csv"], "at least one --train"),
        (["--train", "nope.csv", "--test", "nope.csv"], "no such file"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_bench_ids_bad_arguments_are_named(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "ids", *args])
    assert result.exit_code != 0
    assert message in result.output


def test_ids_train_then_detect_lists_the_events_as_json(captures: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    trained = runner.invoke(app, ["ids", "train", str(captures["drive_a"]), str(captures["drive_b"]),
                                  "--out", str(model), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["model"] == str(model)
    detected = runner.invoke(app, ["ids", "detect", str(captures["attack"]), "--model", str(model), "--json"])
    assert detected.exit_code == 0, detected.output
    events = json.loads(detected.output)["events"]
    assert events and all(e["first_s"] >= 202.0 - 1e-6 for e in events)
    assert {"event_id", "sensor", "count", "first_s", "last_s", "score", "evidence"} <= set(events[0])
    quiet = runner.invoke(app, ["ids", "detect", str(captures["drive_c"]), "--model", str(model)])
    assert quiet.exit_code == 0 and "no security events" in quiet.output


def test_ids_detect_with_a_broken_model_file_says_so(captures: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    result = runner.invoke(app, ["ids", "detect", str(captures["attack"]), "--model", str(bad)])
    assert result.exit_code != 0 and "not an intrusion-detection model" in result.output


def test_ids_train_takes_rule_drives_and_the_model_file_records_it(
    captures: dict[str, Path], tmp_path: Path
) -> None:
    from drivetrain.edge import IdsModel

    model = tmp_path / "m.npz"
    trained = runner.invoke(app, ["ids", "train", str(captures["drive_a"]), str(captures["drive_b"]),
                                  str(captures["drive_c"]), "--rule-drives", "1", "--out", str(model),
                                  "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["rule_drives"] == 1
    assert IdsModel.load(model).rule_drives == 1
    refused = runner.invoke(app, ["ids", "train", str(captures["drive_a"]), "--rule-drives", "0",
                                  "--out", str(model)])
    assert refused.exit_code != 0 and "--rule-drives" in refused.output


def test_a_model_file_written_before_rule_drives_was_recorded_still_loads(
    captures: dict[str, Path], tmp_path: Path
) -> None:
    import io

    from drivetrain.commands.ids import _benign, _load
    from drivetrain.edge import IdsModel, train_model

    model = train_model(_benign([captures["drive_a"], captures["drive_b"], captures["drive_c"]]))
    assert model.rule_drives == 2
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays["header"]).decode())
    del header["rule_drives"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    older = IdsModel.from_bytes(buffer.getvalue())
    assert older.rule_drives is None
    frames = _load(captures["attack"])[0]
    assert np.array_equal(older.stream().score(frames).score, model.stream().score(frames).score)
