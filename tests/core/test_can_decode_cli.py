"""`drivetrain can decode` / `can info` and the capture → Parquet pipeline behind them."""

from __future__ import annotations

import csv
from pathlib import Path

import cantools
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from drivetrain.cli import app
from drivetrain.core.can import decode_capture, load_dbc, read_capture, write_capture
from drivetrain.core.errors import CaptureFormatError, DbcFormatError, SignalMapError

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
COMMA_HEAD = CAPTURES / "comma2k19_head3000.csv"
TOYOTA_DBC = CAPTURES / "toyota_new_mc_pt_generated.dbc"
TOYOTA_MAP = CAPTURES / "toyota_vss.toml"
runner = CliRunner()


def _expected_rows(capture: Path, dbc: Path, bus: int | None = None) -> int:
    """Sum over frames whose address is in the DBC of len(message.signals) (csv + cantools)."""
    db = cantools.database.load_file(dbc, strict=False)
    signals = {m.frame_id: len(m.signals) for m in db.messages}
    with capture.open(newline="") as f:
        return sum(
            signals.get(int(r["address"]), 0)
            for r in csv.DictReader(f)
            if bus is None or int(r["bus"]) == bus
        )


def test_decode_writes_one_row_per_signal_of_every_known_frame(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    summary = decode_capture(COMMA_HEAD, TOYOTA_DBC, out)
    table = pq.read_table(out)
    assert table.num_rows == summary.signal_values == _expected_rows(COMMA_HEAD, TOYOTA_DBC)
    assert table.schema.names == ["timestamp_s", "bus", "frame_id", "message", "signal", "value"]
    assert summary.frames_read == 3000
    assert summary.frames_decoded + summary.frames_unknown_id == 3000
    assert summary.top_unknown_ids[0][1] >= summary.top_unknown_ids[-1][1]


def test_a_dbc_loaded_once_decodes_captures_like_its_file(tmp_path: Path) -> None:
    loaded = load_dbc(TOYOTA_DBC)
    by_file = decode_capture(COMMA_HEAD, TOYOTA_DBC, tmp_path / "file.parquet")
    by_loaded = decode_capture(COMMA_HEAD, loaded, tmp_path / "loaded.parquet")
    assert by_loaded.signal_values == by_file.signal_values > 0
    assert pq.read_table(tmp_path / "loaded.parquet").equals(pq.read_table(tmp_path / "file.parquet"))
    metadata = pq.read_schema(tmp_path / "loaded.parquet").metadata
    assert metadata[b"drivetrain.dbc"] == TOYOTA_DBC.name.encode()


@pytest.mark.shared_data
def test_acceptance_command_row_count_equals_signals_of_known_frames(shared_data: Path, tmp_path: Path) -> None:
    capture = shared_data / "comma2k19" / "raw_can.csv"
    dbc = shared_data / "comma2k19" / "toyota_new_mc_pt_generated.dbc"
    out = tmp_path / "X.parquet"
    result = runner.invoke(app, ["can", "decode", str(capture), "--dbc", str(dbc), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(out).num_rows == _expected_rows(capture, dbc) == 337_635
    assert "135,468 frames, 337,635 signal values" in result.output
    assert "frames/s" in result.output
    assert "frames with ids not in toyota_new_mc_pt_generated.dbc" in result.output


@pytest.mark.shared_data
def test_bus_option_decodes_only_that_bus(shared_data: Path, tmp_path: Path) -> None:
    capture = shared_data / "comma2k19" / "raw_can.csv"
    dbc = shared_data / "comma2k19" / "toyota_new_mc_pt_generated.dbc"
    summary = decode_capture(capture, dbc, tmp_path / "b0.parquet", bus=0)
    assert summary.signal_values == _expected_rows(capture, dbc, bus=0) == 210_706
    assert summary.frames_other_bus == 135_468 - 53_800


def test_values_agree_with_cantools_and_unreceived_signals_are_null(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    decode_capture(COMMA_HEAD, TOYOTA_DBC, out)
    rows = pq.read_table(out).to_pylist()
    db = cantools.database.load_file(TOYOTA_DBC, strict=False)
    frames = read_capture(COMMA_HEAD).frames
    expected: list[tuple[tuple[float, int, int, str], float | None]] = []
    for t, bus, fid, n, data in zip(
        frames.timestamp_s.tolist(), frames.bus.tolist(), frames.frame_id.tolist(), frames.length.tolist(), frames.data
    ):
        try:
            message = db.get_message_by_frame_id(fid)
        except KeyError:
            continue
        try:
            got = message.decode(bytes(data[:n]), decode_choices=False, allow_truncated=True)
        except cantools.database.DecodeError:
            continue  # cantools refuses the frame (overlapping signals); checked elsewhere
        expected += [((t, bus, fid, s.name), got.get(s.name)) for s in message.signals]
    written: dict[tuple[float, int, int, str], list[float | None]] = {}
    for r in rows:
        written.setdefault((r["timestamp_s"], r["bus"], r["frame_id"], r["signal"]), []).append(r["value"])
    assert len(expected) > 1000
    missing = 0
    for key, value in expected:
        actual = written[key].pop(0)
        if value is None:
            assert actual is None
            missing += 1
        else:
            assert actual == pytest.approx(float(value), rel=0, abs=0)
    assert missing > 0  # the excerpt holds truncated frames


def test_map_writes_vss_paths_with_converted_values(tmp_path: Path) -> None:
    out = tmp_path / "vss.parquet"
    summary = decode_capture(COMMA_HEAD, TOYOTA_DBC, out, signal_map=TOYOTA_MAP)
    table = pq.read_table(out)
    assert table.schema.names[-1] == "vss_path"
    assert summary.vss_mapped and table.num_rows == summary.signal_values > 0
    paths = set(table.column("vss_path").to_pylist())
    assert paths <= {"Vehicle.Speed", "Vehicle.AverageSpeed",
                     "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed", "Vehicle.Chassis.SteeringWheel.Angle"}
    speed = [r for r in table.to_pylist() if r["vss_path"] == "Vehicle.Speed"]
    assert speed and all(r["message"] == "SPEED" and r["signal"] == "SPEED" for r in speed)


def test_failed_decode_leaves_no_output_behind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,bus,address,data_hex\n1.0,0,180,00\n2.0,0\n")
    out = tmp_path / "x.parquet"
    with pytest.raises(CaptureFormatError, match=r"bad\.csv:3"):
        decode_capture(bad, TOYOTA_DBC, out, strict=True)
    assert list(tmp_path.iterdir()) == [bad]


# --- the command ---------------------------------------------------------------------------------
def test_cli_reports_malformed_lines_with_numbers_and_counts_the_rest(tmp_path: Path) -> None:
    frames = read_capture(COMMA_HEAD).frames.take(np.arange(50))
    capture = tmp_path / "c.csv"
    write_capture(capture, frames)
    lines = capture.read_text().splitlines()
    for i in range(3, 17, 2):
        lines[i] = "garbage"
    capture.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["can", "decode", str(capture), "--dbc", str(TOYOTA_DBC), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 0, result.output
    assert f"malformed: {capture}:4: expected 4 comma-separated fields, found 1: 'garbage'" in result.output
    assert "... and 2 more malformed lines" in result.output
    assert "43 frames," in result.output


def test_cli_strict_mode_exits_non_zero_naming_the_line(tmp_path: Path) -> None:
    capture = tmp_path / "c.csv"
    capture.write_text("t_s,bus,address,data_hex\n1.0,0,180,0011\n1.5,0,180,zz\n")
    result = runner.invoke(app, ["can", "decode", str(capture), "--dbc", str(TOYOTA_DBC), "--out", str(tmp_path / "o.parquet"), "--strict"])
    assert result.exit_code == 1
    assert "c.csv:3: payload 'zz' is not hexadecimal" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dbc", "missing.dbc"], "missing.dbc"),
        (["--map", str(CAPTURES / "nope.toml")], "nope.toml"),
    ],
)
def test_cli_bad_dbc_or_map_exits_non_zero_with_the_specific_message(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["can", "decode", str(COMMA_HEAD), "--out", str(tmp_path / "o.parquet")]
    if "--dbc" not in args:
        base += ["--dbc", str(TOYOTA_DBC)]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 1
    assert "error:" in result.output and message in result.output


def test_cli_unreadable_capture_exits_non_zero(tmp_path: Path) -> None:
    result = runner.invoke(app, ["can", "decode", str(tmp_path / "none.log"), "--dbc", str(TOYOTA_DBC), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "none.log' does not exist" in result.output


def test_pipeline_raises_typed_errors_for_bad_dbc_and_map(tmp_path: Path) -> None:
    bad_dbc = tmp_path / "bad.dbc"
    bad_dbc.write_text('VERSION ""\nBO_ abc\n')
    with pytest.raises(DbcFormatError, match=r"bad\.dbc:2"):
        decode_capture(COMMA_HEAD, bad_dbc, tmp_path / "o.parquet")
    bad_map = tmp_path / "m.toml"
    bad_map.write_text('version = 1\n[[signals]]\ncan = "SPEED.SPED"\nvss = "Vehicle.Speed"\n')
    with pytest.raises(SignalMapError, match="close matches: SPEED"):
        decode_capture(COMMA_HEAD, TOYOTA_DBC, tmp_path / "o.parquet", signal_map=bad_map)


BEV_DBC = Path(__file__).resolve().parents[2] / "src" / "drivetrain" / "sim" / "data" / \
    "drivetrain_bev.dbc"


@pytest.mark.parametrize("suffix", [".log", ".asc", ".csv", ".blf"])
def test_random_bytes_as_a_capture_exit_1_naming_the_file_and_write_nothing(
    tmp_path: Path, suffix: str
) -> None:
    junk = tmp_path / f"junk{suffix}"
    junk.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, np.uint8).tobytes())
    out = tmp_path / "junk.parquet"
    result = runner.invoke(app, ["can", "decode", str(junk), "--dbc", str(BEV_DBC), "--out",
                                 str(out)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("error: ") and junk.name in message
    for leak in ("Traceback", "unpack", "codec", "Error:"):
        assert leak not in message
    assert "expected" in message or "no CAN frame" in message
    assert not out.exists() and not list(tmp_path.glob(".junk.parquet*"))


def test_an_empty_capture_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(CaptureFormatError, match="holds no CAN frame"):
        decode_capture(empty, BEV_DBC, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def test_a_malformed_candump_line_says_what_a_line_looks_like(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.log"
    capture.write_text("(1.0) can0 0C0#0000000000000000\nthis is not a frame\n")
    summary = decode_capture(capture, BEV_DBC, tmp_path / "x.parquet")
    assert summary.frames_read == 1 and summary.malformed_count == 1
    assert "expected '(TIME) INTERFACE ID#DATA'" in summary.malformed[0].reason


def test_can_info_lists_messages_signals_and_loader_notes() -> None:
    result = runner.invoke(app, ["can", "info", str(TOYOTA_DBC)])
    assert result.exit_code == 0, result.output
    db = cantools.database.load_file(TOYOTA_DBC, strict=False)
    assert f"{len(db.messages)} messages" in result.output
    assert "STEER_TORQUE_SENSOR" in result.output
    assert "loader notes" in result.output


def test_can_info_signals_shows_each_messages_layout_and_signals() -> None:
    db = cantools.database.load_file(TOYOTA_DBC, strict=False)
    message = db.get_message_by_name("STEER_TORQUE_SENSOR")
    result = runner.invoke(app, ["can", "info", str(TOYOTA_DBC), "--signals", "-m",
                                 "STEER_TORQUE_SENSOR"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 messages" in result.output and "+---+---+" in result.output  # the bit layout
    for signal in message.signals:
        row = next(line for line in result.output.splitlines() if f"│ {signal.name} " in line)
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert cells[1:3] == [str(signal.start), str(signal.length)]


def test_can_info_json_has_every_message_and_signal() -> None:
    import json

    result = runner.invoke(app, ["can", "info", str(TOYOTA_DBC), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    db = cantools.database.load_file(TOYOTA_DBC, strict=False)
    assert len(document["messages"]) == len(db.messages)
    by_id = {m["id"]: m for m in document["messages"]}
    for message in db.messages:
        signals = {s["name"]: s for s in by_id[message.frame_id]["signals"]}
        for signal in message.signals:
            assert signals[signal.name]["scale"] == signal.scale
            assert signals[signal.name]["start_bit"] == signal.start


@pytest.mark.parametrize("command", [["can"], ["can", "decode"], ["can", "info"]])
def test_every_can_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
