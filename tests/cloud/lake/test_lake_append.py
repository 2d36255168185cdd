"""Appending to the lake: layout, exactly-once per batch id, residency, and refused input."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_rows import NS_DAY, T0, T0_NS, batch_id, make_rows, sorted_rows

from drivetrain.cloud.lake import LAKE_SCHEMA, VSS_VERSION, Lake
from drivetrain.core.errors import BadInputError, ConfigurationError, TelemetrySchemaError
from drivetrain.core.settings import load_settings

START, END = datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)


def _stored(lake: Lake, tenant: str = "acme") -> pa.Table:
    return lake.sql(tenant, "SELECT vehicle, path, ts, value, batch_id FROM telemetry")


def test_appended_rows_land_in_hive_partitions_by_region_tenant_and_date(lake: Lake) -> None:
    table = make_rows(1000, span_s=2 * 86400)  # two days
    result = lake.append("EU", "acme", table)
    assert result.rows_written == 1000 and result.rows_skipped == 0
    assert len(result.files) == 2
    root = lake.root_of("EU")
    assert root == lake.data_dir / "lake" / "EU"
    dates = sorted(p.parent.name for p in root.glob("region=EU/tenant=acme/date=*/*.parquet"))
    assert dates == ["date=2024-05-01", "date=2024-05-02"]
    assert sorted_rows(_stored(lake)) == sorted_rows(table)


def test_files_have_the_documented_schema_and_open_in_plain_pyarrow(lake: Lake) -> None:
    lake.append("EU", "acme", make_rows(300))
    (file,) = lake.root_of("EU").glob("region=EU/tenant=acme/date=*/*.parquet")
    stored = pq.read_table(file)
    assert stored.schema.names == LAKE_SCHEMA.names
    assert [f.type for f in stored.schema] == [f.type for f in LAKE_SCHEMA]
    assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"


def test_files_carry_min_max_statistics_on_every_column_but_the_random_batch_ids(
    lake: Lake,
) -> None:
    table = make_rows(300)
    result = lake.append("EU", "acme", table)
    (file,) = lake.root_of("EU").glob("region=EU/tenant=acme/date=*/*.parquet")
    assert file.stat().st_size == result.bytes_written
    metadata = pq.ParquetFile(file).metadata
    group = metadata.row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics
             for i in range(metadata.num_columns)}
    assert stats["batch_id"] is None
    for name in ("vehicle", "path", "ts", "value", "category"):
        assert stats[name] is not None and stats[name].has_min_max, name
    ts_ns = table.column("ts").cast(pa.int64()).to_numpy()
    assert stats["ts"].min.timestamp() * 1e9 == pytest.approx(ts_ns.min(), abs=1e3)
    assert stats["ts"].max.timestamp() * 1e9 == pytest.approx(ts_ns.max(), abs=1e3)


def test_a_batch_appended_twice_is_stored_once_and_the_repeat_is_reported(lake: Lake) -> None:
    table = make_rows(2000, batches=8)
    first = lake.append("EU", "acme", table)
    again = lake.append("EU", "acme", table)
    assert (again.rows_written, again.rows_skipped) == (0, 2000)
    assert again.batches_skipped == first.batches_written and again.batches_written == ()
    assert again.files == ()
    assert _stored(lake).num_rows == 2000


def test_only_the_new_batches_of_a_partly_redelivered_table_are_stored(lake: Lake) -> None:
    old = make_rows(1000, seed=1, batches=4)
    new = make_rows(600, seed=2, batches=3)
    lake.append("EU", "acme", old)
    mixed = pa.concat_tables([old.slice(0, 500), new]).unify_dictionaries()
    result = lake.append("EU", "acme", mixed)
    assert result.rows_written == 600 and result.rows_skipped == 500
    assert set(result.batches_written) == {batch_id(2, i) for i in range(3)}
    assert sorted_rows(_stored(lake)) == sorted_rows(pa.concat_tables([old, new]).unify_dictionaries())


def test_the_same_batch_id_in_two_tenants_is_two_batches(lake: Lake) -> None:
    table = make_rows(100, batches=1)
    lake.append("EU", "acme", table)
    result = lake.append("EU", "globex", table)
    assert result.rows_written == 100  # one tenant cannot block (or see) another's batches
    assert _stored(lake, "globex").num_rows == 100


def test_concurrent_appends_of_the_same_batches_store_each_sample_once(lake: Lake) -> None:
    table = make_rows(5000, batches=20)
    results = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        results.append(lake.append("EU", "acme", table))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.rows_written for r in results) == 5000
    assert sum(r.rows_skipped for r in results) == 3 * 5000
    assert sorted_rows(_stored(lake)) == sorted_rows(table)


def test_plain_string_columns_are_accepted_and_stored_dictionary_encoded(lake: Lake) -> None:
    table = make_rows(400, dictionary=False)
    lake.append("EU", "acme", table)
    assert sorted_rows(_stored(lake)) == sorted_rows(table)


def test_text_samples_are_kept_with_a_null_value(lake: Lake) -> None:
    base = make_rows(3, paths=("Vehicle.Cabin.Infotainment.Media.Played.Track",))
    table = base.set_column(3, "value", pa.nulls(3, pa.float64())) \
        .set_column(4, "text", pa.array(["a", "b", None]))
    lake.append("EU", "acme", table)
    got = lake.sql("acme", "SELECT text FROM telemetry ORDER BY ts").column("text").to_pylist()
    assert got == ["a", "b", None]


def test_each_region_writes_only_under_its_own_configured_root(tmp_path: Path) -> None:
    roots = {"EU": tmp_path / "eu-storage", "US": tmp_path / "us-storage"}
    with Lake(tmp_path / "data", roots) as lake:
        lake.append("EU", "acme", make_rows(100, seed=1))
        lake.append("US", "acme", make_rows(100, seed=2))
        lake.append("CN", "acme", make_rows(100, seed=3))
    assert {p.parts[len(roots["EU"].parts)] for p in roots["EU"].rglob("*.parquet")} == \
        {"region=EU"}
    assert {p.parts[len(roots["US"].parts)] for p in roots["US"].rglob("*.parquet")} == \
        {"region=US"}
    assert [p.name for p in (tmp_path / "data" / "lake").iterdir()] == ["CN"]


def test_overlapping_region_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="overlap"):
        Lake(tmp_path, {"EU": tmp_path / "lake", "US": tmp_path / "lake" / "us"})
    with pytest.raises(ConfigurationError, match="overlap"):
        Lake(tmp_path, {"EU": tmp_path / "lake"})  # contains the default roots of the others


def test_settings_configure_roots_and_refuse_an_unknown_region(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, lake_roots={"EU": str(tmp_path / "eu")})
    with Lake.open(settings) as lake:
        assert lake.root_of("EU") == (tmp_path / "eu").resolve()
        assert lake.root_of("US") == (tmp_path / "lake" / "US").resolve()
    with pytest.raises(ConfigurationError, match="region 'XX'"):
        Lake.open(load_settings(data_dir=tmp_path, lake_roots={"XX": str(tmp_path / "x")}))


@pytest.mark.parametrize("tenant", ["../other", "acme/../../x", "ACME", "", "a" * 64, "-acme"])
def test_a_tenant_id_that_could_escape_its_partition_is_refused(lake: Lake, tenant: str) -> None:
    with pytest.raises(BadInputError, match="tenant"):
        lake.append("EU", tenant, make_rows(10))
    assert not any(lake.data_dir.rglob("*.parquet"))


def test_an_unknown_region_is_refused(lake: Lake) -> None:
    with pytest.raises(BadInputError, match="region 'MARS'"):
        lake.append("MARS", "acme", make_rows(10))


def _with(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, array)


def _bad_tables() -> list[object]:
    t = make_rows(20, dictionary=False)
    n = t.num_rows
    cases = [
        ("missing column", t.drop_columns(["batch_id"]), "missing \\['batch_id'\\]"),
        ("extra column", t.append_column("vin", pa.array(["X"] * n)), "unexpected \\['vin'\\]"),
        ("null vehicle", _with(t, "vehicle", pa.array([None] + ["a"] * (n - 1), pa.utf8())),
         "'vehicle': 1 null"),
        ("vehicle with a slash", _with(t, "vehicle", pa.array(["a/b"] * n)), "'a/b'"),
        ("batch id not hex", _with(t, "batch_id", pa.array(["not-a-batch"] * n)),
         "'not-a-batch' is not 32 lower-case hex"),
        ("category of another path",
         _with(t, "category", pa.array(["technical"] * n)), "expected '"),
        ("unknown category", _with(t, "category", pa.array(["secret"] * n)),
         "'secret' is not a privacy category"),
        ("path not VSS", _with(t, "path", pa.array(["Vehicle..Speed"] * n)),
         "'Vehicle..Speed' is not a VSS path"),
        ("naive timestamps", _with(t, "ts", t.column("ts").cast(pa.timestamp("ns"))),
         "without a timezone"),
        ("timestamps of 1970", _with(t, "ts", pa.array(np.arange(n), pa.timestamp("ns", "UTC"))),
         "1970-01-01.*vehicle clock"),
        ("value and text", _with(t, "text", pa.array(["x"] * n)), "both a value and a text"),
        ("value as strings", _with(t, "value", pa.array(["1.0"] * n)), "'value': type string"),
        ("integer paths", _with(t, "path", pa.array(range(n))), "'path': type int64"),
        ("not a table", t.to_batches()[0], "expected a pyarrow.Table"),
    ]
    return [pytest.param(table, message, id=case) for case, table, message in cases]


@pytest.mark.parametrize(("table", "message"), _bad_tables())
def test_a_table_breaking_the_row_schema_is_refused_naming_the_column_and_nothing_is_stored(
    lake: Lake, table: pa.Table, message: str
) -> None:
    with pytest.raises((TelemetrySchemaError, TypeError), match=message):
        lake.append("EU", "acme", table)
    assert not any(lake.data_dir.rglob("*.parquet"))
    assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry").column("n")[0].as_py() == 0


def test_a_table_with_unused_and_duplicate_dictionary_entries_is_stored_by_value(
    lake: Lake,
) -> None:
    table = make_rows(50, batches=1)
    ids = pa.DictionaryArray.from_arrays(
        pa.array(np.tile([1, 2], 25).astype(np.int32)),
        pa.array(["f" * 32, batch_id(0, 0), batch_id(0, 0)]),  # unused entry, duplicate value
    )
    result = lake.append("EU", "acme", _with(table, "batch_id", ids))
    assert result.batches_written == (batch_id(0, 0),) and result.rows_written == 50


def test_vss_version_names_the_release_of_the_builtin_catalog() -> None:
    from drivetrain.core import vss

    header = (Path(vss.__file__).parent / "builtin_signals.yaml").read_text().splitlines()[:8]
    assert any(f"(VSS {VSS_VERSION})" in line for line in header)


def test_a_day_boundary_splits_one_batch_across_two_files_and_both_count_as_committed(
    lake: Lake,
) -> None:
    table = make_rows(100, batches=1, start_ns=T0_NS - NS_DAY // 2, span_s=86400)
    result = lake.append("EU", "acme", table)
    assert len(result.files) == 2 and result.batches_written == (batch_id(0, 0),)
    assert lake.append("EU", "acme", table).rows_skipped == 100
    assert lake.signals("acme", None, None, T0.replace(day=1, month=4), END).num_rows == 100
