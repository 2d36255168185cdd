"""How commands print tables and JSON: numbers alike, paths whole, data never read as markup."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from rich.console import Console

from drivetrain.commands.output import (
    Column,
    arrow_records,
    build_table,
    format_number,
    print_table,
    to_json_value,
)

LONG_PATH = "Vehicle.Powertrain.TractionBattery.CellVoltage.CellVoltages"


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (12345, "12,345"), (-7, "-7"), (3.0, "3"), (87.5, "87.5"),
    (1234.5678, "1,234.57"), (0.001234, "0.001234"), (0.00001234, "1.234e-05"),
    (123456789.0, "123,456,789"), (2.5e16, "2.5e+16"), (-20.48, "-20.48"),
    (math.nan, "NaN"), (math.inf, "inf"), (True, "true"),
])
def test_numbers_are_formatted_alike(value: float, text: str) -> None:
    assert format_number(value) == text


def _render(columns: list[Column], rows: list[list[object]], width: int) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    print_table("t", columns, rows, console)
    return buffer.getvalue()


def test_a_vss_path_is_never_wrapped_even_on_a_narrow_terminal() -> None:
    text = _render([Column("path", "id"), Column("description")],
                   [[LONG_PATH, "a long description that can wrap at any space it likes"]], 80)
    assert LONG_PATH in text


def test_numbers_are_right_aligned_and_text_from_data_is_not_markup() -> None:
    text = _render([Column("name"), Column("n", "number")],
                   [["[bold red]x[/]", 5], ["y", 12345]], 60)
    assert "[bold red]x[/]" in text
    assert "│      5 │" in text and "│ 12,345 │" in text


def test_a_table_into_a_pipe_takes_the_width_it_needs() -> None:
    buffer = io.StringIO()
    rows = [[LONG_PATH * 3, "x" * 150]]
    print_table(None, [Column("path", "id"), Column("text")], rows,
                Console(file=buffer, width=80, color_system=None))
    assert LONG_PATH * 3 in buffer.getvalue() and "x" * 150 in buffer.getvalue()


def test_arrow_nanosecond_times_become_iso_text_without_pandas() -> None:
    ns = 1_714_550_400_123_456_789
    table = pa.table({
        "ts": pa.array([ns, None], pa.timestamp("ns", tz="UTC")),
        "took": pa.array([1_500_000_000, None], pa.duration("ns")),
        "path": pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int8()), pa.array(["a.b"])),
    })
    assert arrow_records(table) == [
        {"ts": "2024-05-01T08:00:00.123456789Z", "took": 1.5, "path": "a.b"},
        {"ts": None, "took": None, "path": "a.b"},
    ]


def test_json_values_are_valid_json() -> None:
    document = to_json_value({"when": datetime(2024, 5, 1, tzinfo=UTC), "nan": math.nan,
                              "items": (1, 2.5), "raw": b"\x01"})
    assert json.loads(json.dumps(document, allow_nan=False)) == {
        "when": "2024-05-01T00:00:00Z", "nan": None, "items": [1, 2.5], "raw": "01"}


def test_build_table_keeps_identifier_columns_whole() -> None:
    table = build_table(None, [Column("path", "id")], [[LONG_PATH]])
    assert table.columns[0].no_wrap and table.columns[0].min_width == len(LONG_PATH)
