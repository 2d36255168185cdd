"""DBC→VSS signal maps: loading, validation against the DBC and catalog, dumping, applying."""

from __future__ import annotations

from pathlib import Path

import cantools
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from drivetrain.core.can import (
    DecodedSignals,
    SignalMap,
    SignalMapping,
    dump_signal_map,
    dumps_signal_map,
    load_signal_map,
    parse_signal_map,
)
from drivetrain.core.errors import SignalMapError
from drivetrain.core.vss import builtin_catalog

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
TOYOTA_DBC = CAPTURES / "toyota_new_mc_pt_generated.dbc"
TOYOTA_MAP = CAPTURES / "toyota_vss.toml"


@pytest.fixture(scope="module")
def database() -> cantools.database.can.Database:
    db = cantools.database.load_file(TOYOTA_DBC, strict=False)
    assert isinstance(db, cantools.database.can.Database)
    return db


def _load(text: str, tmp_path: Path, database, name: str = "m.toml") -> SignalMap:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text)
    return load_signal_map(path, database, builtin_catalog(), dbc_name="toyota.dbc")


def test_map_file_loads_and_takes_the_vss_unit_where_to_unit_is_omitted(database) -> None:  # type: ignore[no-untyped-def]
    signal_map = load_signal_map(TOYOTA_MAP, database, builtin_catalog())
    by_path = {m.vss_path: m for m in signal_map.mappings}
    assert by_path["Vehicle.Speed"].to_unit == "km/h"
    assert by_path["Vehicle.Chassis.SteeringWheel.Angle"].to_unit == "degrees"
    assert signal_map.paths[0] == "Vehicle.Speed"


def test_unknown_message_is_reported_with_file_entry_and_close_matches(tmp_path: Path, database) -> None:  # type: ignore[no-untyped-def]
    text = 'version = 1\n[[signals]]\ncan = "SPED.SPEED"\nvss = "Vehicle.Speed"\n'
    with pytest.raises(SignalMapError) as info:
        _load(text, tmp_path, database)
    message = str(info.value)
    assert f"{tmp_path / 'm.toml'}: entry 1 ('SPED.SPEED' -> 'Vehicle.Speed')" in message
    assert "message 'SPED' is not in toyota.dbc; close matches: SPEED" in message


def test_unknown_signal_and_unknown_vss_path_are_both_reported(tmp_path: Path, database) -> None:  # type: ignore[no-untyped-def]
    text = (
        'version = 1\n[[signals]]\ncan = "SPEED.SPEEED"\nvss = "Vehicle.Speed"\n'
        '[[signals]]\ncan = "SPEED.SPEED"\nvss = "Vehicle.Sped"\n'
    )
    with pytest.raises(SignalMapError) as info:
        _load(text, tmp_path, database)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "entry 1" in lines[0] and "has no signal 'SPEEED'; close matches: SPEED" in lines[0]
    assert "entry 2" in lines[1] and "VSS path 'Vehicle.Sped' is not in the catalog" in lines[1]
    assert "Vehicle.Speed" in lines[1]


def test_to_unit_that_is_not_the_vss_signals_unit_is_refused(tmp_path: Path, database) -> None:  # type: ignore[no-untyped-def]
    text = 'version = 1\n[[signals]]\ncan = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nfrom_unit = "km/h"\nto_unit = "mph"\n'
    with pytest.raises(SignalMapError, match=r"to_unit 'mph' is not Vehicle.Speed's unit 'km/h'"):
        _load(text, tmp_path, database)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('can = "SPEED"\nvss = "Vehicle.Speed"', r"'can' = 'SPEED' is not of the form MESSAGE.SIGNAL"),
        ('can = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nfactor = 2\nfrom_unit = "km/h"', "not both"),
        ('can = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nto_unit = "km/h"', "needs a from_unit"),
        ('can = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nfactor = "2"', "'factor' must be a finite number"),
        ('can = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nscale = 2', r"unknown keys \['scale'\]"),
        ('can = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nfrom_unit = "parsec"', "'parsec' is not a known unit"),
    ],
)
def test_malformed_entries_are_refused_naming_the_entry(entry: str, expected: str) -> None:
    with pytest.raises(SignalMapError, match=rf"m.toml: entry 1: .*{expected}"):
        parse_signal_map(f"version = 1\n[[signals]]\n{entry}\n", "m.toml", "toml")


def test_invalid_toml_and_wrong_version_are_refused() -> None:
    with pytest.raises(SignalMapError, match="m.toml: not valid TOML"):
        parse_signal_map("version = = 1", "m.toml", "toml")
    with pytest.raises(SignalMapError, match="version 2 is not supported"):
        parse_signal_map("version: 2\nsignals: []\n", "m.yaml", "yaml")


def test_map_with_an_unsupported_extension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("{}")
    with pytest.raises(SignalMapError, match=r"extension '\.json'; expected \.toml, \.yaml or \.yml"):
        load_signal_map(path)


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_dump_then_load_gives_the_same_map(tmp_path: Path, database, suffix: str) -> None:  # type: ignore[no-untyped-def]
    original = load_signal_map(TOYOTA_MAP, database, builtin_catalog())
    path = tmp_path / f"copy{suffix}"
    dump_signal_map(original, path)
    again = load_signal_map(path, database, builtin_catalog())
    assert again.mappings == original.mappings


_names = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12)
_entries = st.builds(
    SignalMapping,
    message=_names,
    signal=_names,
    vss_path=st.text(min_size=1, max_size=30).map(str.strip).filter(bool),
    factor=st.none() | st.floats(-1e6, 1e6, allow_nan=False),
    offset=st.none() | st.floats(-1e6, 1e6, allow_nan=False),
)


@settings(max_examples=80, deadline=None)
@given(entries=st.lists(_entries, min_size=1, max_size=5), syntax=st.sampled_from(["toml", "yaml"]))
# TOML forbids raw control characters (DEL included) in strings: the dumper must escape them.
@example(entries=[SignalMapping("0", "0", "\x7f\u00e9\U0001f697", None, None)], syntax="toml")
def test_any_map_round_trips_through_its_text_form(entries: list[SignalMapping], syntax: str) -> None:
    original = SignalMap(tuple(entries), "m")
    again = parse_signal_map(dumps_signal_map(original, syntax), "m", syntax)
    assert again.mappings == original.mappings


def test_reference_vehicle_map_validates_against_its_dbc() -> None:
    from drivetrain.core.can import load_dbc

    data = Path(__file__).resolve().parents[2] / "src" / "drivetrain" / "sim" / "data"
    if not (data / "drivetrain_bev_vss.toml").is_file():
        pytest.skip("the reference vehicle's map is not in this checkout")
    loaded = load_dbc(data / "drivetrain_bev.dbc")
    signal_map = load_signal_map(data / "drivetrain_bev_vss.toml", loaded.database, builtin_catalog())
    assert len(signal_map.mappings) > 10


# --- apply -------------------------------------------------------------------------------------
def _decoded(rows: list[tuple[float, str, str, float]]) -> DecodedSignals:
    messages = tuple(dict.fromkeys(r[1] for r in rows))
    signals = tuple(dict.fromkeys(r[2] for r in rows))
    return DecodedSignals(
        timestamp_s=np.array([r[0] for r in rows], np.float64),
        frame_id=np.zeros(len(rows), np.uint32),
        bus=np.zeros(len(rows), np.uint16),
        message_index=np.array([messages.index(r[1]) for r in rows], np.int32),
        signal_index=np.array([signals.index(r[2]) for r in rows], np.int32),
        value=np.array([r[3] for r in rows], np.float64),
        message_names=messages,
        signal_names=signals,
    )


def test_apply_converts_maps_and_fans_out_in_input_order(database) -> None:  # type: ignore[no-untyped-def]
    signal_map = load_signal_map(TOYOTA_MAP, database, builtin_catalog())
    decoded = _decoded([
        (1.0, "SPEED", "SPEED", 36.0),
        (1.0, "SPEED", "ENCODER", 7.0),
        (2.0, "STEER_ANGLE_SENSOR", "STEER_ANGLE", -90.0),
        (3.0, "SPEED", "SPEED", 72.0),
        (3.0, "WHEEL_SPEEDS", "WHEEL_SPEED_FL", 71.5),
    ])
    vss = signal_map.apply(decoded)
    paths = [vss.paths[i] for i in vss.path_index]
    assert paths == [
        "Vehicle.Speed", "Vehicle.AverageSpeed", "Vehicle.Chassis.SteeringWheel.Angle",
        "Vehicle.Speed", "Vehicle.AverageSpeed", "Vehicle.Chassis.Axle.Row1.Wheel.Left.Speed",
    ]
    assert vss.value.tolist() == [36.0, 36.0, -90.0, 72.0, 72.0, 71.5]
    assert vss.source_row.tolist() == [0, 0, 2, 3, 3, 4]
    assert vss.timestamp_s.tolist() == [1.0, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_apply_matches_a_per_row_reference_on_random_rows(database) -> None:  # type: ignore[no-untyped-def]
    raw = parse_signal_map(
        'version = 1\n[[signals]]\ncan = "SPEED.SPEED"\nvss = "Vehicle.Speed"\nfrom_unit = "mph"\n'
        '[[signals]]\ncan = "GAS_PEDAL.ETQREAL"\nvss = "Vehicle.Speed"\nfactor = 2.5\noffset = -1\n',
        "m.toml", "toml",
    )
    signal_map = raw.validate(database, builtin_catalog())
    rng = np.random.default_rng(7)
    names = [("SPEED", "SPEED"), ("SPEED", "CHECKSUM"), ("GAS_PEDAL", "ETQREAL"), ("GAS_PEDAL", "ETQISC")]
    picks = rng.integers(0, len(names), 5000)
    rows = [(float(i), *names[p], float(v)) for i, (p, v) in enumerate(zip(picks, rng.normal(0, 100, 5000)))]
    vss = signal_map.apply(_decoded(rows))
    expected = [
        (i, v * 1.609344 if s == "SPEED" else v * 2.5 - 1)
        for i, (_, m, s, v) in enumerate(rows) if s in ("SPEED", "ETQREAL")
    ]
    assert vss.source_row.tolist() == [e[0] for e in expected]
    np.testing.assert_allclose(vss.value, [e[1] for e in expected], rtol=1e-12)
