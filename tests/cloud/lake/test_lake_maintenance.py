"""Compaction, retention and export bundles."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_rows import NS_DAY, T0, T0_NS, make_rows, plain, sorted_rows, vehicle_id

from drivetrain.cloud.lake import (
    LAKE_SCHEMA,
    VSS_VERSION,
    BundleManifest,
    Lake,
    RetentionPolicy,
    read_manifest,
    verify_bundle,
)
from drivetrain.cloud.lake.compaction import plan_compaction
from drivetrain.cloud.lake.models import LakeFile
from drivetrain.core.errors import BadInputError, VerificationError

START, END = T0 - timedelta(days=30), T0 + timedelta(days=30)
ALL = "SELECT vehicle, path, ts, value, batch_id FROM telemetry"


# --- compaction -------------------------------------------------------------------------------
def test_compaction_merges_small_files_into_one_sorted_file_with_the_same_rows(lake: Lake) -> None:
    tables = [make_rows(1_500, seed=s, batches=3) for s in range(5)]
    for t in tables:
        lake.append("EU", "acme", t)
    (result,) = lake.compact()
    assert (result.partitions, result.files_before, result.files_after) == (1, 5, 1)
    (f,) = lake.files("acme")
    assert f.sorted and f.rows == 7_500
    stored = plain(pq.read_table(lake.root_of("EU") / f.name))
    keys = list(zip(stored.column("path").to_pylist(), stored.column("vehicle").to_pylist(),
                    stored.column("ts").cast(pa.int64()).to_pylist()))
    assert keys == sorted(keys)
    assert sorted_rows(lake.sql("acme", ALL)) == \
        sorted_rows(pa.concat_tables(tables).unify_dictionaries())
    assert len(list(lake.root_of("EU").rglob("*.parquet"))) == 1  # the old files are gone


def test_batches_stay_deduplicated_after_compaction(lake: Lake) -> None:
    table = make_rows(1_000, batches=5)
    lake.append("EU", "acme", table)
    lake.append("EU", "acme", make_rows(500, seed=9))
    lake.compact()
    result = lake.append("EU", "acme", table)
    assert (result.rows_written, result.rows_skipped) == (0, 1_000)


def test_compaction_keeps_partitions_apart_and_respects_the_target_size(lake: Lake) -> None:
    for s in range(6):
        lake.append("EU", "acme", make_rows(1_000, seed=s, span_s=2 * 86400))
    lake.append("EU", "globex", make_rows(1_000, seed=7))
    results = lake.compact(target_rows=2_500)
    files = lake.files("acme")
    assert {f.day for f in files} == {date(2024, 5, 1), date(2024, 5, 2)}
    assert all(f.rows <= 2_500 for f in files)
    assert sum(f.rows for f in files) == 6_000
    assert results[0].rows == 7_000  # the globex partition was sorted too
    assert lake.compact(target_rows=2_500)[0].files_before == 0  # nothing left to do


def test_plan_leaves_sorted_files_of_a_good_size_alone() -> None:
    def f(i: int, rows: int, is_sorted: bool) -> LakeFile:
        return LakeFile(i, "EU", "acme", date(2024, 5, 1), f"f{i}", rows, 0, 0, 0, is_sorted)

    assert plan_compaction([f(1, 900, True), f(2, 800, True)], target_rows=1000) == []
    groups = plan_compaction([f(1, 100, True), f(2, 200, True), f(3, 900, False)], 1000)
    assert [[x.file_id for x in g.files] for g in groups] == [[1, 2], [3]]


# --- retention --------------------------------------------------------------------------------
def test_retention_keys_parse_and_the_most_specific_key_wins() -> None:
    policy = RetentionPolicy.from_mapping(
        {"*:*": 3650, "*:location": 90, "EU:*": 365, "EU:location": 30}
    )
    assert policy.days_for("EU", "location") == 30
    assert policy.days_for("EU", "technical") == 365
    assert policy.days_for("US", "location") == 90
    assert policy.days_for("US", "cabin") == 3650
    assert RetentionPolicy.from_mapping(policy.to_mapping()) == policy
    assert RetentionPolicy().days_for("EU", "location") is None


@pytest.mark.parametrize(("mapping", "message"), [
    ({"EU-location": 3}, "not 'REGION:category'"),
    ({"XX:location": 3}, "region 'XX'"),
    ({"EU:secrets": 3}, "category 'secrets'"),
    ({"EU:location": -1}, "whole days >= 0"),
    ({"EU:location": True}, "whole days >= 0"),
])
def test_bad_retention_keys_are_refused(mapping: dict[str, int], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        RetentionPolicy.from_mapping(mapping)


def _three_days(lake: Lake) -> pa.Table:
    table = make_rows(6_000, batches=12, start_ns=T0_NS, span_s=3 * 86400)
    lake.append("EU", "acme", table)
    lake.append("US", "acme", make_rows(1_000, seed=5))
    return plain(table)


def test_a_dry_run_lists_what_would_go_and_changes_nothing(lake: Lake) -> None:
    _three_days(lake)
    before = sorted_rows(lake.sql("acme", ALL))
    policy = RetentionPolicy.from_mapping({"EU:location": 1})
    report = lake.apply_retention(today=date(2024, 5, 4), dry_run=True, policy=policy)
    assert report.dry_run and report.files_rewritten == 2 and report.files_deleted == 0
    assert {a.day for a in report.actions} == {date(2024, 5, 1), date(2024, 5, 2)}
    assert all(a.categories == ("location",) for a in report.actions)
    assert sorted_rows(lake.sql("acme", ALL)) == before


def test_retention_rewrites_files_where_one_category_expired_and_deletes_whole_files(
    lake: Lake,
) -> None:
    table = _three_days(lake)
    policy = RetentionPolicy.from_mapping({"EU:location": 1, "EU:*": 2})
    report = lake.apply_retention(today=date(2024, 5, 4), policy=policy)
    # 2024-05-01 is older than 2 days: deleted whole; 05-02 loses location; 05-03 stays.
    assert report.files_deleted == 1 and report.files_rewritten == 1
    days = (table.column("ts").cast(pa.int64()).to_numpy() - T0_NS) // NS_DAY
    category = table.column("category").to_pylist()
    keep = [(d == 1 and c != "location") or d == 2 for d, c in zip(days, category)]
    assert sorted_rows(lake.sql("acme", ALL + " WHERE region = 'EU'")) == \
        sorted_rows(table.filter(pa.array(keep)))
    assert report.rows_dropped == len(keep) - sum(keep)
    assert lake.sql("acme", "SELECT count(*) AS n FROM telemetry WHERE region = 'US'") \
        .column("n")[0].as_py() == 1_000  # the US policy is unset: US keeps everything
    assert not (lake.root_of("EU") / "region=EU/tenant=acme/date=2024-05-01").exists()


def test_batch_ids_are_forgotten_once_all_their_data_expired(lake: Lake) -> None:
    table = make_rows(500, batches=2)
    lake.append("EU", "acme", table)
    lake.apply_retention(today=date(2024, 6, 1), policy=RetentionPolicy.from_mapping({"*:*": 7}))
    assert lake.counts("acme").num_rows == 0
    store = lake._store("EU", create=False)
    assert store is not None and store.index.batch_count("acme") == 0


def test_retention_from_the_settings_applies_without_a_policy_argument(tmp_path: Path) -> None:
    from drivetrain.core.settings import load_settings

    settings = load_settings(data_dir=tmp_path, lake_retention_days={"*:location": 0})
    with Lake.open(settings) as lake:
        lake.append("EU", "acme", make_rows(1_000))
        report = lake.apply_retention(today=date(2024, 5, 2))
        assert report.actions and all(a.categories == ("location",) for a in report.actions)


# --- export bundles ---------------------------------------------------------------------------
def test_a_region_export_is_a_verifiable_self_describing_bundle(lake: Lake, tmp_path: Path) -> None:
    table = _three_days(lake)
    out = tmp_path / "bundle"
    manifest = lake.export_bundle("acme", "EU", out)
    assert manifest.rows == table.num_rows and len(manifest.files) == 3
    assert manifest.vss_version == VSS_VERSION and manifest.region == "EU"
    assert [c["name"] for c in manifest.schema] == LAKE_SCHEMA.names
    assert all(c["description"] for c in manifest.schema)
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    first = datetime.fromtimestamp(int(ts.min()) // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert manifest.start is not None and manifest.start.startswith(first)
    assert sum(manifest.categories.values()) == table.num_rows
    assert verify_bundle(out) == manifest == read_manifest(out)
    exported = pa.concat_tables([pq.read_table(out / f.path) for f in manifest.files])
    assert sorted_rows(exported) == sorted_rows(table)


def test_a_vehicle_export_holds_only_that_vehicle(lake: Lake, tmp_path: Path) -> None:
    table = _three_days(lake)
    manifest = lake.export_bundle("acme", "EU", tmp_path / "one", vehicle=vehicle_id(2))
    assert manifest.vehicle == vehicle_id(2)
    expected = table.filter(pa.compute.equal(table.column("vehicle"), vehicle_id(2)))
    exported = pa.concat_tables([pq.read_table(tmp_path / "one" / f.path)
                                 for f in manifest.files])
    assert sorted_rows(exported) == sorted_rows(expected)


def test_a_tampered_bundle_fails_verification(lake: Lake, tmp_path: Path) -> None:
    lake.append("EU", "acme", make_rows(300))
    manifest = lake.export_bundle("acme", "EU", tmp_path / "b")
    data_file = tmp_path / "b" / manifest.files[0].path
    data_file.write_bytes(data_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(VerificationError, match="SHA-256"):
        verify_bundle(tmp_path / "b")


def test_a_manifest_pointing_outside_its_bundle_is_refused(lake: Lake, tmp_path: Path) -> None:
    lake.append("EU", "acme", make_rows(300))
    lake.export_bundle("acme", "EU", tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    data = json.loads(path.read_text())
    data["files"][0]["path"] = "../../etc/passwd"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match="outside the bundle"):
        verify_bundle(tmp_path / "b")


def test_export_never_writes_into_a_non_empty_directory(lake: Lake, tmp_path: Path) -> None:
    lake.append("EU", "acme", make_rows(10))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty"):
        lake.export_bundle("acme", "EU", tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_an_export_of_a_region_without_data_is_an_empty_valid_bundle(
    lake: Lake, tmp_path: Path
) -> None:
    manifest = lake.export_bundle("acme", "JP", tmp_path / "empty")
    assert (manifest.rows, manifest.files, manifest.start) == (0, (), None)
    assert verify_bundle(tmp_path / "empty").rows == 0


def test_manifest_round_trips_and_refuses_other_formats() -> None:
    manifest = BundleManifest(
        tenant="acme", region="EU", vehicle=None, created_at="2024-05-01T00:00:00+00:00",
        rows=0, start=None, end=None, categories={}, files=(), schema=(),
    )
    assert BundleManifest.from_dict(manifest.to_dict()) == manifest
    with pytest.raises(BadInputError, match="format"):
        BundleManifest.from_dict({**manifest.to_dict(), "format": "zip"})
    with pytest.raises(BadInputError, match="format_version"):
        BundleManifest.from_dict({**manifest.to_dict(), "format_version": 99})
    broken = manifest.to_dict()
    del broken["rows"]
    with pytest.raises(BadInputError, match="missing or malformed"):
        BundleManifest.from_dict(broken)
