"""Minimisation at ingestion: values are stored no more precise than the vehicle's region
allows (``drivetrain.core.privacy_policy``), and a region's default-off categories need
consent. The raw values are checked to be absent from the Parquet files with DuckDB."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pytest
from ingest_helpers import LATITUDE, NOW_NS, SOC, SPEED, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, MemoryLake, MemoryReportedState
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import set_consent, vehicle_pseudonym
from drivetrain.core.errors import BadInputError, ConfigurationError
from drivetrain.core.privacy_policy import (
    DEFAULT_POLICY_FILE,
    POLICY_ENV,
    MinimisationPolicy,
    active_policy,
)
from drivetrain.core.vss import PRIVACY_CATEGORIES

RAW_LATITUDE = 48.137154
RAW_SPEED = 52.7


def _consent_all(database: Database, fleet: Fleet, *names: str) -> None:
    with database.session() as session:
        for name in names:
            set_consent(session, vin=fleet.vin(name), tenant="acme",
                        categories=PRIVACY_CATEGORIES, source="test", actor="test")


def _parquet(root: Path, sql: str, params: list[object]) -> list[tuple[object, ...]]:
    files = [str(p) for p in root.rglob("*.parquet")]
    assert files, f"no Parquet file under {root}"
    with duckdb.connect() as con:
        return con.execute(sql.replace("FILES", f"read_parquet({files})"), params).fetchall()


def test_location_lands_in_each_regions_lake_at_its_precision_and_never_raw(
    database: Database, fleet: Fleet, tmp_path: Path
) -> None:
    _consent_all(database, fleet, "eu1", "us1")
    lake = Lake(tmp_path / "data")
    now = wall_clock_ns()
    pipeline = IngestPipeline(database, lake, MemoryReportedState(), vehicle_cache_ttl_s=0)
    samples = [(LATITUDE, now, RAW_LATITUDE), (SPEED, now, RAW_SPEED), (SOC, now, 80.25)]
    try:
        report = pipeline.process([
            telemetry(fleet.vin("eu1"), fleet.key("eu1"), samples),
            telemetry(fleet.vin("us1"), fleet.key("us1"), samples),
        ])
    finally:
        lake.close()
    assert report.samples_accepted == 6
    # EU: latitude to 2 decimals, speed to whole km/h; US: latitude to 3 decimals only.
    assert report.coarsened_by_region == {"EU": 2, "US": 1}
    with database.session() as session:
        eu = vehicle_pseudonym(session, "acme", fleet.vin("eu1"))
        us = vehicle_pseudonym(session, "acme", fleet.vin("us1"))
    eu_root, us_root = tmp_path / "data" / "lake" / "EU", tmp_path / "data" / "lake" / "US"
    query = "SELECT path, value FROM FILES WHERE vehicle = ? ORDER BY path"
    assert _parquet(eu_root, query, [eu]) == [
        (LATITUDE, 48.14), (SOC, 80.25), (SPEED, 53.0)]
    assert _parquet(us_root, query, [us]) == [
        (LATITUDE, 48.137), (SOC, 80.25), (SPEED, RAW_SPEED)]
    # The raw values are nowhere in either region's files, and neither region holds the other's.
    for root in (eu_root, us_root):
        raw = _parquet(root, "SELECT count(*) FROM FILES WHERE value = ?", [RAW_LATITUDE])
        assert raw == [(0,)]
    assert _parquet(eu_root, "SELECT count(*) FROM FILES WHERE value = ?", [RAW_SPEED]) == [(0,)]
    assert _parquet(eu_root, "SELECT count(*) FROM FILES WHERE vehicle = ?", [us]) == [(0,)]
    assert _parquet(us_root, "SELECT count(*) FROM FILES WHERE vehicle = ?", [eu]) == [(0,)]


def test_a_default_off_category_is_dropped_without_consent(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, lake: MemoryLake
) -> None:
    # An operator's policy that lets US vehicles send driving behaviour by default, but not EU.
    policy = json.loads(DEFAULT_POLICY_FILE.read_text())
    policy["regions"]["US"]["default_off"] = ["location", "cabin"]
    pipeline = make_pipeline(policy=MinimisationPolicy.from_dict(policy))
    samples = [(SPEED, NOW_NS, RAW_SPEED), (LATITUDE, NOW_NS, RAW_LATITUDE), (SOC, NOW_NS, 80.0)]
    report = pipeline.process([
        telemetry(fleet.vin("eu1"), fleet.key("eu1"), samples),
        telemetry(fleet.vin("us1"), fleet.key("us1"), samples),
    ])
    assert [r.not_consented for r in report.results] == [2, 1]
    eu_rows, us_rows = lake.rows("EU", "acme"), lake.rows("US", "acme")
    assert eu_rows is not None and us_rows is not None
    assert eu_rows.column("path").to_pylist() == [SOC]
    assert sorted(us_rows.column("path").to_pylist()) == sorted([SPEED, SOC])
    assert RAW_SPEED in us_rows.column("value").to_pylist()  # no US rule for speed


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda p: p.update(version=2), "version is 2; expected 1"),
        (lambda p: p["regions"].update(MARS={}), "regions.MARS: region not known"),
        (lambda p: p["regions"]["EU"].update(default_off=["gps"]),
         "regions.EU.default_off: 'gps' is not a privacy category"),
        (lambda p: p["regions"]["EU"]["precision"][0].update(decimals=12),
         "regions.EU.precision[0].decimals is 12; expected a whole number from 0 to 9"),
        (lambda p: p["regions"]["US"]["precision"][0].update(step=1),
         "regions.US.precision[0]: expected exactly one of 'decimals' or 'step'"),
        (lambda p: p["regions"]["CN"]["precision"][0].update(step=-1),
         "regions.CN.precision[0].step is -1; expected a positive number"),
        (lambda p: p["regions"]["JP"].update(retention=3),
         "regions.JP: unknown field(s) retention"),
    ],
)
def test_a_bad_policy_file_gives_a_specific_error(
    change: object, error: str, tmp_path: Path
) -> None:
    policy = json.loads(DEFAULT_POLICY_FILE.read_text())
    change(policy)  # type: ignore[operator]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    with pytest.raises(BadInputError, match=error.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        active_policy({POLICY_ENV: str(path)})


def test_an_unreadable_policy_stops_the_service(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no-such.json"):
        active_policy({POLICY_ENV: str(tmp_path / "no-such.json")})
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigurationError, match="not JSON"):
        active_policy({POLICY_ENV: str(tmp_path / "broken.json")})


def test_an_operator_policy_replaces_the_shipped_one(tmp_path: Path) -> None:
    policy = json.loads(DEFAULT_POLICY_FILE.read_text())
    policy["regions"]["EU"]["precision"][0]["decimals"] = 1
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    rule = active_policy({POLICY_ENV: str(path)}).for_region("EU").rule_for(LATITUDE)
    assert rule is not None and rule.decimals == 1
    shipped = active_policy({}).for_region("EU").rule_for(LATITUDE)
    assert shipped is not None and shipped.decimals == 2


def test_a_grid_rule_snaps_location_and_coarsening_twice_changes_nothing() -> None:
    cn = active_policy({}).for_region("CN")
    paths = (LATITUDE, SOC)
    index = np.array([0, 0, 1], np.int32)
    values = np.array([31.2304, float("nan"), 80.123])
    coarse, changed = cn.coarsen(paths, index, values)
    assert coarse[0] == 31.25 and np.isnan(coarse[1]) and coarse[2] == 80.123
    assert changed == 1
    again, changed_again = cn.coarsen(paths, index, coarse)
    assert changed_again == 0 and np.array_equal(again, coarse, equal_nan=True)
