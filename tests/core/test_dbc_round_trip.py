"""What load_dbc reads, dump_dbc writes back: a dumped DBC loads to the same messages and signals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cantools.database.can import Database

from drivetrain.core.can import dump_dbc, load_dbc
from drivetrain.core.errors import DbcFormatError

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def _layout(database: Database) -> list[tuple[object, ...]]:
    """Everything that decides how a frame decodes, message by message."""
    rows: list[tuple[object, ...]] = []
    for m in sorted(database.messages, key=lambda m: (m.frame_id, m.is_extended_frame)):
        signals = sorted(
            (
                s.name, s.start, s.length, s.byte_order, s.is_signed, s.is_float,
                float(s.conversion.scale), float(s.conversion.offset),
                tuple(sorted((int(k), str(v)) for k, v in (s.conversion.choices or {}).items())),
                s.multiplexer_signal, tuple(s.multiplexer_ids or ()),
            )
            for s in m.signals
        )
        rows.append((m.name, m.frame_id, m.is_extended_frame, m.length, tuple(signals)))
    return rows


def _round_trips(path: Path, tmp_path: Path) -> bool:
    loaded = load_dbc(path).database
    out = tmp_path / f"{path.stem}.dumped.dbc"
    dump_dbc(loaded, out)
    return _layout(load_dbc(out).database) == _layout(loaded)


def test_a_dbc_with_every_repaired_quirk_round_trips(tmp_path: Path) -> None:
    assert _round_trips(FIXTURES / "dbc" / "quirks.dbc", tmp_path)


SHARDS = 4


@pytest.mark.shared_data
@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_loadable_opendbc_file_round_trips(
    shared_data: Path, tmp_path: Path, report_figure: Callable[[str], None], shard: int
) -> None:
    """Files are dealt round-robin into shards so parallel workers share the work."""
    checked = refused = 0
    for path in sorted((shared_data / "opendbc").rglob("*.dbc"))[shard::SHARDS]:
        try:
            load_dbc(path)
        except DbcFormatError:
            refused += 1  # the unresolvable generator sources (see test_decoder_opendbc)
            continue
        assert _round_trips(path, tmp_path), path
        checked += 1
    report_figure(f"{checked} opendbc files round-trip through dump_dbc and load_dbc")
    assert checked > 25 and refused <= 2


def test_dumping_to_an_unwritable_place_names_the_file(tmp_path: Path) -> None:
    database = load_dbc(FIXTURES / "dbc" / "quirks.dbc").database
    target = tmp_path / "missing-dir" / "out.dbc"
    try:
        dump_dbc(database, target)
    except DbcFormatError as e:
        assert str(target) in str(e)
    else:
        raise AssertionError("dump_dbc wrote into a directory that does not exist")
