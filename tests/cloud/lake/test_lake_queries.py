"""Queries through DuckDB, each cross-checked against a straightforward NumPy computation over
the same rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from lake_rows import NS_DAY, PATHS, T0, T0_NS, make_rows, plain, vehicle_id

from drivetrain.cloud.lake import Lake
from drivetrain.core.errors import QueryError

START = T0 - timedelta(days=1)
END = T0 + timedelta(days=5)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lake, pa.Table, pa.Table]]:
    """A lake with three days of EU data and two of US data for tenant acme (some samples
    without a value), and other data for tenant globex."""
    data = tmp_path_factory.mktemp("lake") / "data"
    eu = make_rows(20_000, seed=1, vehicles=6, batches=40, span_s=3 * 86400)
    us = make_rows(8_000, seed=2, vehicles=3, batches=10, start_ns=T0_NS + NS_DAY // 3,
                   span_s=2 * 86400)
    value = eu.column("value").to_numpy()
    eu = eu.set_column(3, "value", pa.array(value, mask=np.arange(len(value)) % 17 == 0))
    with Lake(data) as lake:
        lake.append("EU", "acme", eu.slice(0, 12_000))
        lake.append("EU", "acme", eu.slice(12_000))
        lake.append("US", "acme", us)
        lake.append("EU", "globex", make_rows(5_000, seed=3))
        yield lake, plain(eu), plain(us)


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    return {
        "vehicle": np.array(table.column("vehicle").to_pylist(), dtype=object),
        "path": np.array(table.column("path").to_pylist(), dtype=object),
        "ts": table.column("ts").cast(pa.int64()).to_numpy(),
        "value": table.column("value").to_numpy(zero_copy_only=False),
    }


def test_raw_signals_equal_the_filtered_sorted_rows(loaded: tuple[Lake, pa.Table, pa.Table]) -> None:
    lake, eu, us = loaded
    vehicles, paths = [vehicle_id(1), vehicle_id(2)], ["Vehicle.Speed", PATHS[2]]
    start, end = T0 + timedelta(hours=5), T0 + timedelta(days=1, hours=7)
    got = lake.signals("acme", vehicles, paths, start, end)
    assert got.column_names == ["vehicle", "path", "ts", "value", "text"]
    c = _columns(pa.concat_tables([eu, us]))
    lo, hi = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
    keep = np.isin(c["vehicle"], vehicles) & np.isin(c["path"], paths) & \
        (c["ts"] >= lo) & (c["ts"] < hi)
    order = np.lexsort((c["ts"][keep], c["path"][keep], c["vehicle"][keep]))
    assert got.column("vehicle").to_pylist() == list(c["vehicle"][keep][order])
    assert got.column("ts").cast(pa.int64()).to_pylist() == list(c["ts"][keep][order])
    expected = c["value"][keep][order]
    assert np.array_equal(got.column("value").to_numpy(zero_copy_only=False), expected,
                          equal_nan=True)


def test_start_is_inclusive_and_end_exclusive(lake: Lake) -> None:
    table = make_rows(10, batches=1)
    ts = pa.array(T0_NS + np.arange(10) * 1000, pa.timestamp("ns", tz="UTC"))  # 1 µs apart
    lake.append("EU", "acme", table.set_column(2, "ts", ts))
    got = lake.signals("acme", None, None, T0 + timedelta(microseconds=3),
                       T0 + timedelta(microseconds=8))
    assert sorted(got.column("ts").cast(pa.int64()).to_pylist()) == \
        [T0_NS + i * 1000 for i in range(3, 8)]


def _reference_buckets(c: dict[str, np.ndarray], step_ns: int, agg: str) -> dict[tuple[str, str, int], tuple[float | None, int]]:
    groups: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for v, p, t, x in zip(c["vehicle"], c["path"], c["ts"], c["value"]):
        groups[(v, p, int(t // step_ns * step_ns))].append((int(t), float(x)))
    result = {}
    for key, samples in groups.items():
        values = [(t, x) for t, x in samples if not np.isnan(x)]
        xs = np.array([x for _, x in values])
        if not values:
            result[key] = (None, 0)
        elif agg == "mean":
            result[key] = (float(xs.mean()), len(xs))
        elif agg == "min":
            result[key] = (float(xs.min()), len(xs))
        elif agg == "max":
            result[key] = (float(xs.max()), len(xs))
        else:
            result[key] = (max(values)[1], len(xs))
    return result


@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
@pytest.mark.parametrize("every", ["90s", "1h", "1d"])
def test_down_sampled_signals_equal_a_per_bucket_numpy_aggregate(
    loaded: tuple[Lake, pa.Table, pa.Table], every: str, agg: str
) -> None:
    lake, eu, _ = loaded
    got = lake.signals("acme", None, None, START, END, every=every, agg=agg, regions=["EU"])
    step_ns = {"90s": 90, "1h": 3600, "1d": 86400}[every] * 10**9
    expected = _reference_buckets(_columns(eu), step_ns, agg)
    rows = got.to_pylist()
    assert len(rows) == len(expected)
    for row in rows:
        ts = pa.scalar(row["ts"], pa.timestamp("ns", tz="UTC")).cast(pa.int64()).as_py()
        value, samples = expected[(row["vehicle"], row["path"], ts)]
        assert row["samples"] == samples
        if value is None:
            assert row["value"] is None
        else:
            assert row["value"] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("agg", ["mean", "min", "max", "last"])
@pytest.mark.parametrize("group_by", ["region", "vehicle", "day"])
def test_fleet_aggregates_equal_a_numpy_group_by(
    loaded: tuple[Lake, pa.Table, pa.Table], group_by: str, agg: str
) -> None:
    lake, eu, us = loaded
    path = "Vehicle.Speed"
    got = lake.fleet_aggregate("acme", path, START, END, group_by=group_by, agg=agg)
    groups: dict[object, list[tuple[int, float, str]]] = defaultdict(list)
    for region, table in (("EU", eu), ("US", us)):
        c = _columns(table)
        for v, p, t, x in zip(c["vehicle"], c["path"], c["ts"], c["value"]):
            if p != path:
                continue
            key = {"region": region, "vehicle": v,
                   "day": (T0 + timedelta(days=(int(t) - T0_NS) // NS_DAY)).date()}[group_by]
            groups[key].append((int(t), float(x), v))
    assert got.column(group_by).to_pylist() == sorted(groups)
    for row in got.to_pylist():
        samples = groups[row[group_by]]
        xs = np.array([x for _, x, _ in samples if not np.isnan(x)])
        expected = {"mean": xs.mean(), "min": xs.min(), "max": xs.max(),
                    "last": max((t, x) for t, x, _ in samples if not np.isnan(x))[1]}[agg]
        assert row["value"] == pytest.approx(float(expected), rel=1e-12)
        assert row["samples"] == len(xs)
        assert row["vehicles"] == len({v for _, _, v in samples})


def test_counts_per_region_and_category_equal_the_stored_rows(
    loaded: tuple[Lake, pa.Table, pa.Table],
) -> None:
    lake, eu, us = loaded
    got = {(r["region"], r["category"]): r["rows"] for r in lake.counts("acme").to_pylist()}
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for region, table in (("EU", eu), ("US", us)):
        for category in table.column("category").to_pylist():
            expected[(region, category)] += 1
    assert got == expected


def test_a_query_reads_only_its_own_tenants_data(loaded: tuple[Lake, pa.Table, pa.Table]) -> None:
    lake, eu, us = loaded
    assert lake.signals("acme", None, None, START, END).num_rows == eu.num_rows + us.num_rows
    assert lake.signals("globex", None, None, START, END).num_rows == 5_000
    assert lake.signals("initech", None, None, START, END).num_rows == 0


def test_an_empty_result_keeps_the_result_schema(lake: Lake) -> None:
    raw = lake.signals("acme", None, None, START, END)
    sampled = lake.signals("acme", None, None, START, END, every="1m")
    aggregate = lake.fleet_aggregate("acme", "Vehicle.Speed", START, END, group_by="day")
    assert (raw.num_rows, sampled.num_rows, aggregate.num_rows) == (0, 0, 0)
    assert raw.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert sampled.column_names[-1] == "samples"
    assert aggregate.schema.field("day").type == pa.date32()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"every": "1 minute"}, "every='1 minute' is not an interval"),
    ({"every": "0s"}, "every='0s' is not an interval"),
    ({"every": "400d"}, "longer than a year"),
    ({"agg": "median"}, "agg='median' is not known"),
    ({"start": datetime(2024, 5, 1)}, "has no timezone"),
    ({"end": START}, "is not after start"),
    ({"vehicles": "abc"}, "list of strings"),
])
def test_bad_query_parameters_are_refused_naming_the_parameter(
    lake: Lake, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"tenant": "acme", "vehicles": None, "paths": None,
                               "start": START, "end": END, **kwargs}
    with pytest.raises(QueryError, match=message):
        lake.signals(**args)  # type: ignore[arg-type]


def test_a_fleet_aggregate_with_an_unknown_grouping_is_refused(lake: Lake) -> None:
    with pytest.raises(QueryError, match="group_by='tenant'"):
        lake.fleet_aggregate("acme", "Vehicle.Speed", START, END, group_by="tenant")


def test_a_result_over_max_rows_is_refused_with_advice(loaded: tuple[Lake, pa.Table, pa.Table]) -> None:
    lake, *_ = loaded
    with pytest.raises(QueryError, match="more than max_rows=100 rows.*every="):
        lake.signals("acme", None, None, START, END, max_rows=100)


def test_queries_read_compacted_and_appended_files_alike(tmp_path: Path) -> None:
    with Lake(tmp_path) as lake:
        for seed in range(4):
            lake.append("EU", "acme", make_rows(2_000, seed=seed))
        before = lake.fleet_aggregate("acme", "Vehicle.Speed", START, END, agg="mean")
        (result,) = lake.compact()
        assert (result.files_before, result.files_after, result.rows) == (4, 1, 8_000)
        after = lake.fleet_aggregate("acme", "Vehicle.Speed", START, END, agg="mean")
        assert after.column("value")[0].as_py() == pytest.approx(before.column("value")[0].as_py())
