"""The latest values handed to the twins: the stored rows built from the columns are the
rows the twins would store from the same values given as a mapping."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from drivetrain.cloud.ingest.latest_values import LatestValues
from drivetrain.cloud.ingest.validation import PathTable, SampleColumns
from drivetrain.cloud.twins.reported import _rows
from drivetrain.core.errors import BadInputError
from drivetrain.core.vss import builtin_catalog

SPEED = "Vehicle.Speed"  # float
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"  # uint8
DOME = "Vehicle.Cabin.Light.IsDomeOn"  # boolean
MODE = "Vehicle.Powertrain.Transmission.PerformanceMode"  # string
VINS = ["DTVZZZ00000000002", "DTVAAA00000000001"]
NOW_NS = 1_780_000_000_123_456_789


def _values(value: list[float], text: list[str | None], *, paths: list[str]) -> LatestValues:
    table = PathTable(builtin_catalog())
    ids = table.ids_for(paths)
    n = len(paths)
    columns = SampleColumns(
        vehicle=np.array([i * 2 // n for i in range(n)], np.int32),
        path_id=ids.astype(np.int32),
        ts_ns=np.array([NOW_NS - 1_000_000_000 * i + 789 for i in range(n)], np.int64),
        value=np.array(value, np.float64),
        value_valid=np.array([t is None for t in text], np.bool_),
        text=pa.array(text, pa.utf8()),
        text_valid=np.array([t is not None for t in text], np.bool_),
    )
    return LatestValues(columns, np.arange(n), VINS, table)


def test_stored_rows_are_what_the_twins_store_from_the_same_values_in_vin_path_order() -> None:
    paths = [SPEED, CHARGE_LIMIT, DOME, MODE, SPEED, DOME, CHARGE_LIMIT, MODE]
    value = [42.5, 80.9, 1.0, np.nan, -3.25, 0.0, 7.0, np.nan]
    text = [None, None, None, "SPORT", None, None, None, "ECO"]
    latest = _values(value, text, paths=paths)
    rows = latest.stored_rows(NOW_NS)
    # The mapping form (what the in-memory twins read), encoded by the twins themselves.
    assert rows == sorted(_rows(latest, NOW_NS), key=lambda row: (row[0], row[1]))
    assert latest.values_count == 8 and latest.vehicles == 2
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[(VINS[0], CHARGE_LIMIT)][2:5] == ("i", 80.0, None)  # truncated, as int()
    assert by_key[(VINS[0], DOME)][2:5] == ("b", 1.0, None)
    assert by_key[(VINS[0], MODE)][2:5] == ("s", None, "SPORT")
    assert all(r[5] % 1000 == 0 and r[6] == NOW_NS for r in rows)  # measured to the µs


def test_stored_rows_come_in_path_vin_order_for_a_path_major_table() -> None:
    paths = [SPEED, CHARGE_LIMIT, DOME, MODE, SPEED, DOME, CHARGE_LIMIT, MODE]
    value = [42.5, 80.9, 1.0, np.nan, -3.25, 0.0, 7.0, np.nan]
    text = [None, None, None, "SPORT", None, None, None, "ECO"]
    latest = _values(value, text, paths=paths)
    rows = latest.stored_rows(NOW_NS, path_major=True)
    assert rows == sorted(latest.stored_rows(NOW_NS), key=lambda row: (row[1], row[0]))
    assert len({row[1] for row in rows}) == 4 and len({row[0] for row in rows}) == 2


def test_a_value_the_twins_would_refuse_is_refused_naming_vehicle_and_path() -> None:
    latest = _values([1.0, np.inf], [None, None], paths=[SPEED, CHARGE_LIMIT])
    with pytest.raises(BadInputError, match=f"{VINS[1]} '{CHARGE_LIMIT}'"):
        latest.stored_rows(NOW_NS)


def test_float_columns_with_nulls_are_built_from_a_bitmap_equal_to_a_masked_array() -> None:
    from drivetrain.cloud.ingest.assembly import float_array

    values = np.array([1.5, np.nan, -2.0, 0.0, 7.25, np.nan, 3.0, 9.0, 1.0], np.float64)
    valid = ~np.isnan(values)
    built = float_array(values, valid)
    assert built.equals(pa.array(values, mask=~valid)) and built.null_count == 2
    assert float_array(values[valid], None).to_pylist() == values[valid].tolist()
    assert len(float_array(np.zeros(0), np.zeros(0, np.bool_))) == 0
