"""Benchmark: reported-state updates per second and a fleet query, on simple and realistic twins.

    python benchmarks/twins.py [--quick] [--database sqlite|postgresql] [--postgres-url URL]
                               [--vehicles N] [--paths P] [--repeats R] [--query-twins T]
                               [--fleet-twins F] [--fleet-updates U] [--database-url URL]

Everything runs on one engine: a fresh SQLite file (the embedded default) or, with
``--database postgresql`` (the fleet store), a fresh database on the server named by
``--postgres-url`` / ``$DRIVETRAIN_BENCH_POSTGRES_URL`` / ``$DRIVETRAIN_TEST_POSTGRES_URL``,
dropped afterwards. The top-level figures are the first shapes measured (kept for
comparison); ``realistic`` holds the ones that reflect a real fleet.

(a) updates: ``drivetrain.cloud.twins.apply_reported`` on ``--vehicles`` registered vehicles x
    ``--paths`` VSS paths (default 2,000 x 20 = 40,000 values per pass; ``--quick``: 1,000 x
    20), called in batches of 250 vehicles (5,000 values, one transaction each, as an ingest
    micro-batch), every value newer than the stored one, after an untimed first pass that
    creates the rows. Baseline, measured in the same run on the same twins: the straightforward
    ORM way — for each (vin, path) ``session.get`` the row, then update it if the measurement
    is newer or add a new one, committing once per vehicle — on a sample of 100 vehicles
    (``--quick``: 50), as a rate. Each of ``--repeats`` pairs runs ours then the baseline;
    figures are medians, ``ratio`` is the median of per-pair ratios.
    For scale: the best published figure from an open twin service is about 3,200 twin
    modifications per second, on a cluster (printed as ``published_anchor_updates_per_s``;
    it is not measured here).
(b) query: ``query_twins`` over ``--query-twins`` twins of one tenant (default 100,000 in both
    modes), each with one reported value and one ECU, with ``region == "EU" and
    reported."…StateOfHealth" < 80 and software."BMS" < "2.4.0"``, first page of 100 plus the
    total count; p50 and p90 of 15 runs (``--quick``: 7) after one warm-up.
(c) ``realistic``: ``--fleet-twins`` twins (default 100,000, also in ``--quick``) shaped like
    the simulated fleet's (``_twins_fleet.py``): 24 reported values each (floats, integers,
    booleans), the 13 ECUs of their CAN model with software versions as ``drivetrain sim
    fleet`` draws them, a pending desired charge limit on every tenth. Updates: every value
    of ``--fleet-updates`` of them (default 4,000; quick 1,000) newer, in batches of 250
    twins (6,000 values, one transaction each), through ``apply_reported`` (which also
    converges the desired items the values satisfy); ``updates_per_cpu_s`` counts this
    process's CPU and, on a local PostgreSQL, its server backends'. Baseline, paired per
    pass, committing the same batches: SQLAlchemy Core's upsert
    (``insert().on_conflict_do_update`` with the same newer-measurement-wins condition,
    executemany) on 500 of the twins — it converges nothing, so it does less; ``ratio`` is
    per wall second, ``cpu_ratio`` per CPU-second (server backends included). Query: the
    same query as (b) over the realistic twins; ``query_p50_client_cpu_ms`` is this
    process's CPU per run (all of it on SQLite).
    The stocked fleet is built once and reused (``_bench_db.py``: a file under
    ``--cache-dir`` for SQLite, a template database ``dt_bench_twins_*`` on PostgreSQL);
    ``stock_s`` appears when this run built it.

Targets: ``updates_per_s`` >= 20,000 (SQLite); on PostgreSQL ``realistic.updates_per_s`` >=
50,000; ``realistic.query_p50_ms`` < 50. Wall-clock figures on a shared machine are
pessimistic: the ``*_cpu_*`` figures are what to compare between runs. Progress goes to
stderr; the last line on stdout is one JSON object with ``peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _bench_db as bench_db
import _twins_fleet as fleet
from rich.console import Console
from sqlalchemy import insert
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import generate_vin, register_vehicle
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.twins import apply_reported, query_twins
from drivetrain.cloud.twins.models import ECUS, REPORTED, TWINS, ReportedRow
from drivetrain.cloud.twins.values import version_key
from drivetrain.core.crypto import SigningKey
from drivetrain.core.vss import builtin_catalog

PUBLISHED_ANCHOR_UPDATES_PER_S = 3200
BATCH_VEHICLES = 250
SOH = "Vehicle.Powertrain.TractionBattery.StateOfHealth"
QUERY = f'region == "EU" and reported."{SOH}" < 80 and software."BMS" < "2.4.0"'
REGIONS = ("EU", "US", "CN", "JP")

err = Console(stderr=True)


def _numeric_paths(count: int) -> list[str]:
    paths = [s.path for s in builtin_catalog() if s.node_type == "sensor"
             and s.datatype in ("float", "double")]
    if count > len(paths):
        raise SystemExit(f"--paths {count}: the catalog has only {len(paths)} float sensors")
    return paths[:count]


def _register(database: Database, tenant: str, count: int, rng: random.Random) -> list[str]:
    key = SigningKey.generate().verify_key
    vins: list[str] = []
    with database.session() as session:
        create_tenant(session, tenant, actor="benchmark")
        while len(vins) < count:
            vin = generate_vin(rng)
            if vin in vins:
                continue
            register_vehicle(session, vin=vin, tenant=tenant, model="compact-bev",
                             region=REGIONS[len(vins) % 2], verify_key=key, actor="benchmark")
            vins.append(vin)
    return vins


def _reports(vins: list[str], paths: list[str], ts: datetime, rng: random.Random
             ) -> dict[str, dict[str, tuple[Any, datetime]]]:
    return {vin: {p: (rng.uniform(0, 100), ts) for p in paths} for vin in vins}


def _ours(database: Database, vins: list[str], paths: list[str], ts: datetime,
          rng: random.Random) -> float:
    """Seconds to apply one value per (vin, path), in batches of BATCH_VEHICLES vehicles."""
    batches = [_reports(vins[i : i + BATCH_VEHICLES], paths, ts, rng)
               for i in range(0, len(vins), BATCH_VEHICLES)]
    started = time.perf_counter()
    changed = 0
    for reports in batches:
        with database.session() as session:
            changed += apply_reported(session, reports)
    elapsed = time.perf_counter() - started
    if changed != len(vins) * len(paths):
        raise SystemExit(f"apply_reported changed {changed} values, expected {len(vins) * len(paths)}")
    return elapsed


def _baseline(database: Database, vins: list[str], paths: list[str], ts: datetime,
              rng: random.Random) -> float:
    """Seconds for the ORM way: get, update-if-newer or add, commit per vehicle."""
    reports = _reports(vins, paths, ts, rng)
    ts_ns = int(ts.timestamp() * 1e9)
    started = time.perf_counter()
    for vin, values in reports.items():
        with Session(database.engine) as session:
            for path, (value, _) in values.items():
                row = session.get(ReportedRow, (vin, path))
                if row is None:
                    session.add(ReportedRow(vin=vin, path=path, kind="f", num=value, text=None,
                                            ts_ns=ts_ns, updated_ns=time.time_ns()))
                elif ts_ns > row.ts_ns:
                    row.kind, row.num, row.text = "f", value, None
                    row.ts_ns, row.updated_ns = ts_ns, time.time_ns()
            session.commit()
    return time.perf_counter() - started


def _updates(database: Database, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    paths = _numeric_paths(args.paths)
    err.print(f"registering {args.vehicles} vehicles")
    vins = _register(database, "bench-updates", args.vehicles, rng)
    sample = vins[: args.baseline_vehicles]
    base = datetime(2026, 1, 1, tzinfo=UTC)
    _ours(database, vins, paths, base, rng)  # creates the rows (and the twins); not timed
    ours, baseline, ratios = [], [], []
    for repeat in range(args.repeats):
        ts = base + timedelta(seconds=repeat + 1)
        ours_s = _ours(database, vins, paths, ts, rng)
        base_s = _baseline(database, sample, paths, ts + timedelta(milliseconds=500), rng)
        ours.append(len(vins) * len(paths) / ours_s)
        baseline.append(len(sample) * len(paths) / base_s)
        ratios.append(ours[-1] / baseline[-1])
        err.print(f"pair {repeat + 1}/{args.repeats}: ours {ours[-1]:,.0f}/s, "
                  f"ORM baseline {baseline[-1]:,.0f}/s")
    return {
        "vehicles": len(vins),
        "paths": len(paths),
        "values_per_pass": len(vins) * len(paths),
        "batch_values": BATCH_VEHICLES * len(paths),
        "baseline_sample_values": len(sample) * len(paths),
        "updates_per_s": round(statistics.median(ours)),
        "orm_baseline_updates_per_s": round(statistics.median(baseline)),
        "ratio": round(statistics.median(ratios), 2),
        "published_anchor_updates_per_s": PUBLISHED_ANCHOR_UPDATES_PER_S,
    }


def _stock_query_twins(database: Database, count: int, rng: random.Random) -> None:
    """``count`` twins of tenant bench-query with SoH and a BMS version (direct bulk insert)."""
    now = datetime.now(UTC)
    now_ns = time.time_ns()
    with database.session() as session:
        create_tenant(session, "bench-query", actor="benchmark")
    for start in range(0, count, 10_000):
        twins, reported, ecus = [], [], []
        for i in range(start, min(count, start + 10_000)):
            vin = f"DTQ{i:014d}"
            twins.append({"vin": vin, "tenant_id": "bench-query", "model": "compact-bev",
                          "region": REGIONS[i % len(REGIONS)], "owner": None,
                          "desired_version": 0, "send_pending": False, "sent_seq": 0,
                          "created_at": now})
            reported.append({"vin": vin, "path": SOH, "kind": "f", "num": rng.uniform(60, 100),
                             "text": None, "ts_ns": now_ns, "updated_ns": now_ns})
            version = f"2.{rng.randrange(0, 8)}.{rng.randrange(0, 10)}"
            ecus.append({"vin": vin, "ecu": "BMS", "hardware_id": "BMS-HW-1",
                         "software_version": version, "software_key": version_key(version),
                         "source": "reported", "updated_at": now})
        with database.session() as session:
            connection = session.connection()
            connection.execute(insert(TWINS), twins)
            connection.execute(insert(REPORTED), reported)
            connection.execute(insert(ECUS), ecus)


def _query(database: Database, args: argparse.Namespace) -> dict[str, Any]:
    err.print(f"stocking {args.query_twins:,} twins for the query")
    _stock_query_twins(database, args.query_twins, random.Random(11))
    runs = 7 if args.quick else 15
    times, total = [], 0
    for run in range(runs + 1):
        started = time.perf_counter()
        with database.session() as session:
            page = query_twins(session, "bench-query", QUERY, limit=100)
        elapsed_ms = (time.perf_counter() - started) * 1000
        total = page.total
        if run:  # the first run warms the caches
            times.append(elapsed_ms)
    times.sort()
    err.print(f"query over {args.query_twins:,} twins: {total:,} match, "
              f"p50 {statistics.median(times):.1f} ms")
    return {
        "query_twins": args.query_twins,
        "query_matches": total,
        "query_runs": runs,
        "p50_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 1),
    }


def _realistic(database: Database, args: argparse.Namespace, stock: dict[str, Any]) -> dict[str, Any]:
    server = fleet.ServerCpu(database)
    vins = [fleet.fleet_vin(i) for i in range(args.fleet_twins)]
    err.print(f"realistic updates: {args.fleet_updates:,} of {args.fleet_twins:,} twins per pass")
    updates = fleet.measure_updates(
        database, vins[: args.fleet_updates], batch_vehicles=BATCH_VEHICLES,
        baseline_vehicles=min(args.fleet_updates, BATCH_VEHICLES * 2), repeats=args.repeats,
        server=server, say=err.print,
    )  # fmt: skip
    query = fleet.measure_query(database, 7 if args.quick else 15)
    err.print(f"realistic query over {args.fleet_twins:,} twins: {query['query_matches']:,} match, "
              f"p50 {query['query_p50_ms']:.1f} ms")  # fmt: skip
    return {
        "database": database.dialect,
        "twins": args.fleet_twins,
        "reported_per_twin": len(fleet.REPORTED_SIGNALS),
        "ecus_per_twin": fleet.ECUS_PER_TWIN,
        "desired_share": 0.1,
        **stock,
        **updates,
        **query,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller update runs; under a minute")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="engine: a fresh SQLite file (default) or a fresh PostgreSQL database")
    parser.add_argument("--postgres-url", help="PostgreSQL server for --database postgresql "
                        f"(default ${bench_db.SERVER_ENV}, else ${bench_db.TEST_SERVER_ENV})")
    parser.add_argument("--database-url", help="an existing, empty state database to use instead")
    parser.add_argument("--cache-dir", type=Path, default=bench_db.DEFAULT_CACHE,
                        help="where the stocked realistic fleet is kept for SQLite")
    parser.add_argument("--vehicles", type=int, help="vehicles updated per pass (default 2000; quick 1000)")
    parser.add_argument("--paths", type=int, default=20, help="VSS paths per vehicle")
    parser.add_argument("--baseline-vehicles", type=int, help="vehicles in the ORM baseline sample")
    parser.add_argument("--repeats", type=int, default=None, help="measurement pairs (default 5; quick 3)")
    parser.add_argument("--query-twins", type=int, default=100_000, help="twins in the query benchmark")
    parser.add_argument("--fleet-twins", type=int, default=100_000, help="realistic twins stocked")
    parser.add_argument("--fleet-updates", type=int,
                        help="realistic twins updated per pass (default 4000; quick 1000)")
    args = parser.parse_args(argv)
    args.vehicles = args.vehicles or (1000 if args.quick else 2000)
    args.baseline_vehicles = min(args.vehicles, args.baseline_vehicles or (50 if args.quick else 100))
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.fleet_updates = min(args.fleet_twins, args.fleet_updates or (1000 if args.quick else 4000))
    try:
        source = bench_db.source(args)
    except bench_db.BenchDatabaseError as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    with source as (database, stock):
        result = {"database": database.dialect, **_updates(database, args),
                  **_query(database, args), "realistic": _realistic(database, args, stock)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
