"""Attack ground truth: per-frame labels and records, exported as the public datasets do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from drivetrain.core.can import FrameBatch, read_capture
from drivetrain.core.errors import BadInputError, CaptureFormatError
from drivetrain.sim.can import (
    BENIGN_LABEL,
    FRAME_LABELS,
    AttackRecord,
    FrameSynthesizer,
    LabelledFrames,
    flood,
    masquerade,
    read_records,
    spoof,
    suspend,
    write_records,
)


@pytest.fixture
def attacked(suv_traffic: LabelledFrames, suv_synthesizer: FrameSynthesizer) -> LabelledFrames:
    rng = np.random.default_rng(12)
    traffic = flood(suv_traffic, rng, start_s=1.0, duration_s=0.1)
    traffic = spoof(
        traffic,
        rng,
        suv_synthesizer.bus_layout,
        message="ESC_VehSpeed",
        values={"VehSpeed": 40.0},
        start_s=2.0,
        duration_s=1.0,
    )
    traffic = suspend(traffic, can_id=0x1B0, start_s=4.0, duration_s=1.0)
    return masquerade(
        traffic,
        rng,
        suv_synthesizer.bus_layout,
        message="MCU_R_Status",
        values={"MotRSpd": 9000.0},
        start_s=6.0,
        duration_s=1.0,
    )


def test_road_csv_export_reads_back_with_the_same_frames_and_labels(
    attacked: LabelledFrames, tmp_path: Path
) -> None:
    attacked.write(tmp_path / "attacked.csv")
    capture = read_capture(tmp_path / "attacked.csv", strict=True)
    assert capture.labels is not None
    assert capture.labels.as_strings() == attacked.labels.as_strings()
    for name in ("frame_id", "is_extended", "length", "data"):
        assert np.array_equal(getattr(capture.frames, name), getattr(attacked.frames, name)), name
    assert np.allclose(capture.frames.timestamp_s, attacked.frames.timestamp_s, rtol=0, atol=1e-9)
    assert set(capture.labels.names) == {"Benign", "Flooding", "Fabrication", "Masquerade"}


def test_parquet_export_holds_every_frame_with_label_and_attack_id(
    attacked: LabelledFrames, tmp_path: Path
) -> None:
    attacked.write(tmp_path / "attacked.parquet")
    table = pq.read_table(tmp_path / "attacked.parquet")
    assert table.num_rows == len(attacked)
    assert table.column("label").to_pylist() == attacked.labels.as_strings()
    assert table.column("attack_id").to_pylist() == attacked.attack.tolist()
    assert set(table.column("vehicle").to_pylist()) == {"DTSUV000000000007"}
    data = table.column("data").to_pylist()
    lengths = attacked.frames.length.tolist()
    assert all(d == bytes(attacked.frames.data[i, : lengths[i]]) for i, d in enumerate(data))


@pytest.mark.parametrize("suffix", [".log", ".blf"])
def test_candump_and_blf_logs_are_written_through_the_capture_writers(
    attacked: LabelledFrames, tmp_path: Path, suffix: str
) -> None:
    attacked.write(tmp_path / f"bus{suffix}")
    capture = read_capture(tmp_path / f"bus{suffix}", strict=True)
    assert np.array_equal(capture.frames.frame_id, attacked.frames.frame_id)
    assert np.array_equal(capture.frames.data, attacked.frames.data)
    assert np.allclose(capture.frames.timestamp_s, attacked.frames.timestamp_s, atol=2e-6)


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_attack_records_round_trip(attacked: LabelledFrames, tmp_path: Path, suffix: str) -> None:
    write_records(tmp_path / f"attacks{suffix}", attacked.records)
    assert read_records(tmp_path / f"attacks{suffix}") == attacked.records
    assert [r.kind for r in attacked.records] == [
        "flooding",
        "spoofing",
        "suspension",
        "masquerade",
    ]


def test_attack_records_csv_lists_ids_in_hex(attacked: LabelledFrames, tmp_path: Path) -> None:
    write_records(tmp_path / "attacks.csv", attacked.records)
    lines = (tmp_path / "attacks.csv").read_text().splitlines()
    assert lines[0].startswith('"kind","label","start_s","end_s","can_ids"')
    assert '"suspension","Suspension"' in lines[3] and '"1B0"' in lines[3]


def test_unreadable_records_and_unknown_extensions_are_refused(
    tmp_path: Path, attacked: LabelledFrames
) -> None:
    with pytest.raises(BadInputError, match="kind 'dos' is not one of"):
        AttackRecord.from_dict(
            {"kind": "dos", "start_s": 0, "end_s": 1, "can_ids": [0], "vehicle": "x"}
        )
    with pytest.raises(BadInputError, match="missing key 'end_s'"):
        AttackRecord.from_dict({"kind": "replay", "start_s": 0, "can_ids": [0], "vehicle": "x"})
    (tmp_path / "bad.json").write_text('{"kind": "replay"}')
    with pytest.raises(BadInputError, match="expected a list of attack records"):
        read_records(tmp_path / "bad.json")
    with pytest.raises(CaptureFormatError, match="extension '.txt'"):
        attacked.write(tmp_path / "frames.txt")
    with pytest.raises(CaptureFormatError, match="extension '.xml'"):
        write_records(tmp_path / "attacks.xml", attacked.records)


def test_labels_are_benign_or_the_attack_class_of_their_record(attacked: LabelledFrames) -> None:
    labels = np.array(attacked.labels.as_strings())
    assert (labels[~attacked.is_attack] == BENIGN_LABEL).all()
    for index, record in enumerate(attacked.records):
        assert set(labels[attacked.attack == index]) <= {FRAME_LABELS[record.kind]}


def _attack_conventions(
    frames: FrameBatch, labels: list[str], label: str
) -> tuple[int, float, float]:
    """(genuine frames of the target id inside the attack span, median attack gap, median
    genuine gap) for a capture with one targeted attack."""
    names = np.array(labels)
    attack = names == label
    target = int(np.unique(frames.frame_id[attack])[0])
    of_target = frames.frame_id == target
    span = frames.timestamp_s[attack]
    inside = (
        of_target
        & ~attack
        & (frames.timestamp_s >= span.min())
        & (frames.timestamp_s <= span.max())
    )
    return (
        int(inside.sum()),
        float(np.median(np.diff(span))),
        float(np.median(np.diff(frames.timestamp_s[of_target & ~attack]))),
    )


@pytest.mark.shared_data
def test_labels_follow_the_road_dataset_conventions(
    shared_data: Path,
    attacked: LabelledFrames,
    suv_traffic: LabelledFrames,
    suv_synthesizer: FrameSynthesizer,
) -> None:
    road = shared_data / "road"
    road_labels: set[str] = set()
    for path in sorted(road.glob("*.csv")):
        capture = read_capture(path)
        assert capture.labels is not None
        road_labels.update(capture.labels.names)
        if path.stem.endswith("_masquerade"):
            # ROAD: the impersonated ECU is silent while the attacker sends at its period
            inside, attack_gap, genuine_gap = _attack_conventions(
                capture.frames, capture.labels.as_strings(), "Masquerade"
            )
            assert inside == 0 and attack_gap == pytest.approx(genuine_gap, rel=0.2)
    assert road_labels <= {BENIGN_LABEL, *FRAME_LABELS.values()}
    # ours, on the same terms
    ours = masquerade(
        suv_traffic,
        np.random.default_rng(2),
        suv_synthesizer.bus_layout,
        message="ESC_VehSpeed",
        values={"VehSpeed": 0.0},
        start_s=2.0,
        duration_s=5.0,
    )
    inside, attack_gap, genuine_gap = _attack_conventions(
        ours.frames, ours.labels.as_strings(), "Masquerade"
    )
    assert inside == 0 and attack_gap == pytest.approx(genuine_gap, rel=0.2)
    fabricated = spoof(
        suv_traffic,
        np.random.default_rng(2),
        suv_synthesizer.bus_layout,
        message="ESC_VehSpeed",
        values={"VehSpeed": 0.0},
        start_s=2.0,
        duration_s=5.0,
    )
    inside, _, _ = _attack_conventions(
        fabricated.frames, fabricated.labels.as_strings(), "Fabrication"
    )
    road_fab = read_capture(road / "max_engine_coolant_temp_attack.csv")
    assert road_fab.labels is not None
    road_inside, _, _ = _attack_conventions(
        road_fab.frames, road_fab.labels.as_strings(), "Fabrication"
    )
    assert inside > 0 and road_inside > 0  # fabrication: the genuine ECU keeps sending
