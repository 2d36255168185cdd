"""benchmarks/twins.py: its realistic fleet is shaped as documented, its query answers what the
twins say, and a tiny run on each engine ends with consistent JSON figures."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.testing import temporary_postgres_schema
from drivetrain.cloud.twins import get_twin, query_twins

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import _twins_fleet as fleet  # a helper beside the benchmark scripts


def _run(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "twins.py"), "--quick",
         "--vehicles", "100", "--paths", "5", "--baseline-vehicles", "10", "--repeats", "1",
         "--query-twins", "2000", "--fleet-twins", "2000", "--fleet-updates", "300", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict)
    return figures


def _matches_by_hand(database: Database, vins: list[str]) -> set[str]:
    """The benchmark query evaluated in Python over each twin, as get_twin shows it."""
    matched = set()
    with database.session() as session:
        for vin in vins:
            twin = get_twin(session, vin, tenant=fleet.TENANT)
            bms = next(e.software_version for e in twin.ecus if e.name == "BMS")
            major, minor, _ = (int(part) for part in (bms or "9.9.9").split("."))
            soh = twin.reported[fleet.SOH].value
            if twin.region == "EU" and isinstance(soh, float) and soh < 80 and (major, minor) < (2, 4):
                matched.add(vin)
    return matched


def test_realistic_twins_have_the_documented_shape_and_the_query_selects_what_they_say(
    database: Database,
) -> None:
    vins = fleet.stock_fleet(database, 400)
    assert len(vins) == 400
    with database.session() as session:
        for index in (0, 1, 7, 10, 399):
            twin = get_twin(session, vins[index], tenant=fleet.TENANT)
            assert len(twin.reported) >= 20 and len(twin.ecus) >= 5
            assert {e.name for e in twin.ecus} >= {"BMS", "VCU"}
            assert bool(twin.items) == fleet.has_desired(index)
            if twin.items:
                (item,) = twin.items
                assert (item.path, item.value, item.status) == (fleet.CHARGE_LIMIT, 80, "pending")
        page = query_twins(session, fleet.TENANT, fleet.QUERY, limit=1000)
    expected = _matches_by_hand(database, vins)
    assert 0 < len(expected) < 100  # about 5 %: EU x state of health < 80 x BMS 2.3.1
    assert page.total == len(expected) and {t.vin for t in page.twins} == expected


def test_a_realistic_update_pass_stores_every_value_and_converges_the_matching_items(
    database: Database,
) -> None:
    vins = fleet.stock_fleet(database, 100)
    server = fleet.ServerCpu(database)
    before = datetime.now(UTC)
    figures = fleet.measure_updates(
        database, vins[:60], batch_vehicles=25, baseline_vehicles=20, repeats=1, server=server,
        say=lambda line: None,
    )  # fmt: skip
    assert figures["values_per_pass"] == 60 * len(fleet.REPORTED_SIGNALS)
    assert figures["cpu_counts_server"] is (database.dialect == "postgresql")
    assert figures["updates_per_s"] > 0 and figures["core_upsert_baseline_updates_per_s"] > 0
    with database.session() as session:
        updated = [get_twin(session, vin, tenant=fleet.TENANT) for vin in vins[20:60:10]]
        untouched = get_twin(session, vins[90], tenant=fleet.TENANT)
    assert all(r.ts < before for r in untouched.reported.values())
    for twin in updated:  # past the baseline's sample: our pass wrote them last
        assert all(r.ts > before for r in twin.reported.values())
        (item,) = twin.items
        assert (item.status == "converged") == (twin.reported[fleet.CHARGE_LIMIT].value == 80)


def test_twins_benchmark_quick_run_ends_with_consistent_figures(tmp_path: Path) -> None:
    figures = _run("--cache-dir", str(tmp_path / "cache"))
    assert figures["database"] == "sqlite" and figures["values_per_pass"] == 500
    assert figures["ratio"] == pytest.approx(
        figures["updates_per_s"] / figures["orm_baseline_updates_per_s"], rel=0.02
    )
    realistic = figures["realistic"]
    assert (realistic["twins"], realistic["updated_twins"]) == (2000, 300)
    assert realistic["reported_per_twin"] >= 20 and realistic["ecus_per_twin"] >= 5
    assert realistic["values_per_pass"] == 300 * realistic["reported_per_twin"]
    assert realistic["fleet_from_cache"] is False and realistic["stock_s"] > 0
    assert realistic["ratio"] == pytest.approx(
        realistic["updates_per_s"] / realistic["core_upsert_baseline_updates_per_s"], rel=0.5
    )
    assert 0 < realistic["query_matches"] < 2000
    assert figures["peak_rss_mb"] > 0
    assert sorted(k for k in figures if "ratio" in k) == ["ratio"]
    assert sorted(k for k in realistic if "ratio" in k) == ["cpu_ratio", "ratio"]
    assert realistic["cpu_ratio"] == pytest.approx(
        realistic["updates_per_cpu_s"] / realistic["core_upsert_baseline_updates_per_cpu_s"],
        rel=0.02,
    )
    again = _run("--cache-dir", str(tmp_path / "cache"))
    assert again["realistic"]["fleet_from_cache"] is True
    assert again["realistic"]["query_matches"] == realistic["query_matches"]


def test_twins_benchmark_runs_on_postgresql_and_counts_the_servers_cpu(
    postgres_worker_database: str,
) -> None:
    with temporary_postgres_schema(postgres_worker_database) as url:
        figures = _run("--database-url", url)
    assert figures["database"] == "postgresql"
    assert figures["realistic"]["cpu_counts_server"] is True
    assert figures["realistic"]["updates_per_cpu_s"] > 0
    assert 0 < figures["realistic"]["query_matches"] < 2000
