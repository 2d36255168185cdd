"""Realistic twins for ``benchmarks/twins.py``: stocked in bulk, updated and queried.

A realistic twin looks like one the simulated fleet leaves behind: 24 reported values of the
kinds a car sends (floats, integers, booleans; the traction battery's state of health among
them), the 13 ECUs of its CAN model with software versions drawn as in ``drivetrain sim
fleet`` (``sim.fleet.inventory``: BMS ``2.3.1`` on about 40 % of the fleet), and on every tenth
twin a desired charge limit (pending: published, not yet reported back). The values of
personal paths (10 of the 24: driving behaviour, cabin) are stocked where ``apply_reported``
keeps them when the regions have no store of their own (PostgreSQL): the state database's
``twin_reported_personal``; an embedded database's region files get them from ``db upgrade``.
Twins are written
straight into the twins tables (PostgreSQL ``COPY``, SQLite ``executemany``), which is the
only way to have 100,000 of them in seconds; what is measured then goes through the twins
domain's public functions.

PostgreSQL work happens in a server process: :class:`ServerCpu` reads the CPU time of the
benchmark's own backends from ``/proc`` (a local server), so ``updates_per_cpu_s`` counts
both sides.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, event
from sqlalchemy.dialects import postgresql, sqlite

from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.infra.region_stores import region_session
from drivetrain.cloud.twins import apply_reported, query_twins
from drivetrain.cloud.twins.models import DESIRED, ECUS, PERSONAL_REPORTED, REPORTED, TWINS
from drivetrain.cloud.twins.personal import is_personal_path
from drivetrain.cloud.twins.values import version_key
from drivetrain.sim.fleet.inventory import draw_inventories, model_ecus

TENANT = "bench-fleet"
REGIONS = ("EU", "US", "CN", "JP")
MODELS = (("compact-hatch-50", "compact_bev"), ("midsize-suv-77", "suv_bev"))
BP = "Vehicle.Powertrain.TractionBattery."
SOH = BP + "StateOfHealth"
CHARGE_LIMIT = BP + "Charging.ChargeLimit"
ECUS_PER_TWIN = min(len(model_ecus(can)) for _, can in MODELS)
QUERY = f'region == "EU" and reported."{SOH}" < 80 and software."BMS" < "2.4.0"'
#: Twins per bulk-insert chunk while stocking.
STOCK_CHUNK = 10_000
#: Bump when the stocked shape changes (cached fleets are rebuilt).
CACHE_VERSION = 2

#: The reported paths of a realistic twin, each with a value generator (kinds as in VSS).
_Gen = Callable[[random.Random], bool | int | float]
REPORTED_SIGNALS: tuple[tuple[str, _Gen], ...] = (
    ("Vehicle.Speed", lambda r: r.uniform(0, 130)),
    ("Vehicle.IsMoving", lambda r: r.random() < 0.4),
    ("Vehicle.TraveledDistance", lambda r: r.randrange(1_000, 200_000)),
    ("Vehicle.Acceleration.Longitudinal", lambda r: r.gauss(0, 1.5)),
    ("Vehicle.Chassis.Accelerator.PedalPosition", lambda r: r.randrange(0, 101)),
    ("Vehicle.Chassis.Brake.PedalPosition", lambda r: r.randrange(0, 101)),
    ("Vehicle.Chassis.SteeringWheel.Angle", lambda r: r.randrange(-400, 401)),
    ("Vehicle.Chassis.ParkingBrake.IsEngaged", lambda r: r.random() < 0.6),
    ("Vehicle.Powertrain.Transmission.CurrentGear", lambda r: r.randrange(-1, 2)),
    ("Vehicle.Powertrain.Range", lambda r: r.randrange(20_000, 450_000)),
    (BP + "StateOfCharge.Current", lambda r: r.uniform(5, 100)),
    (SOH, lambda r: r.uniform(60, 100)),
    (BP + "CurrentVoltage", lambda r: r.uniform(340, 410)),
    (BP + "CurrentCurrent", lambda r: r.uniform(-150, 250)),
    (BP + "CurrentPower", lambda r: r.uniform(-60_000, 150_000)),
    (BP + "Temperature.Average", lambda r: r.uniform(5, 40)),
    (BP + "Temperature.Max", lambda r: r.uniform(10, 45)),
    (BP + "CellVoltage.Min", lambda r: r.uniform(3.2, 3.9)),
    (BP + "CellVoltage.Max", lambda r: r.uniform(3.9, 4.2)),
    (BP + "Charging.IsCharging", lambda r: r.random() < 0.15),
    (CHARGE_LIMIT, lambda r: r.choice((80, 90, 100))),
    ("Vehicle.LowVoltageBattery.CurrentVoltage", lambda r: r.uniform(11.8, 14.6)),
    ("Vehicle.Cabin.HVAC.AmbientAirTemperature", lambda r: r.uniform(-10, 35)),
    ("Vehicle.Cabin.Door.Row1.DriverSide.IsOpen", lambda r: r.random() < 0.05),
)


def fleet_vin(index: int) -> str:
    """The VIN of realistic twin ``index`` (well-formed; VIN order is index order)."""
    return f"DTB{index:014d}"


def has_desired(index: int) -> bool:
    """Every tenth twin carries a desired charge limit."""
    return index % 10 == 0


# --- stocking ----------------------------------------------------------------------------------


def _stored(value: float) -> tuple[str, float, None]:  # bool and int are floats here
    kind = "b" if isinstance(value, bool) else "i" if isinstance(value, int) else "f"
    return kind, float(value), None


def _constant(connection: Connection, table: Table, column: str, value: Any) -> Any:
    """``value`` as the driver takes it for ``table.column`` (bulk rows skip SQLAlchemy)."""
    processor = table.c[column].type.bind_processor(connection.dialect)
    return processor(value) if processor is not None else value


def _bulk_insert(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Append ``rows`` (every column of ``table``, in order) the fastest way the engine has."""
    columns = [c.name for c in table.columns]
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" * len(columns))
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", rows
    )


def stock_fleet(database: Database, count: int, seed: int = 11) -> list[str]:
    """Write ``count`` realistic twins of tenant :data:`TENANT`; returns their VINs."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    now_ns = time.time_ns()
    set_at = now - timedelta(hours=1)
    inventories = draw_inventories([MODELS[i % 2][1] for i in range(count)], seed)
    with database.session() as session:
        create_tenant(session, TENANT, actor="benchmark")
        # Personal values go where apply_reported keeps them when every region's store is the
        # state database (PostgreSQL without state_region_urls). Elsewhere (an embedded
        # database keeps each region in a file of its own) they are stocked in twin_reported,
        # and `db upgrade` moves them to the region stores.
        state_is_store = all(region_session(session, r) is session for r in REGIONS)
    personal_table = PERSONAL_REPORTED if state_is_store else REPORTED
    vins = [fleet_vin(i) for i in range(count)]
    for start in range(0, count, STOCK_CHUNK):
        with database.session() as session:
            connection = session.connection()
            created = _constant(connection, TWINS, "created_at", now)
            stamp = _constant(connection, DESIRED, "set_at", set_at)
            updated = _constant(connection, ECUS, "updated_at", now)
            twins: list[tuple[Any, ...]] = []
            reported: list[tuple[Any, ...]] = []
            personal: list[tuple[Any, ...]] = []
            ecus: list[tuple[Any, ...]] = []
            desired: list[tuple[Any, ...]] = []
            for i in range(start, min(count, start + STOCK_CHUNK)):
                vin = vins[i]
                wanted = has_desired(i)
                twins.append((
                    vin, TENANT, MODELS[i % 2][0], REGIONS[i % len(REGIONS)], None,
                    1 if wanted else 0, stamp if wanted else None, False,
                    1 if wanted else None, None, 1 if wanted else 0, stamp if wanted else None,
                    None, None, created,
                ))  # fmt: skip
                for path, draw in REPORTED_SIGNALS:
                    row = (vin, path, *_stored(draw(rng)), now_ns, now_ns)
                    (personal if is_personal_path(path) else reported).append(row)
                ecus.extend(
                    (vin, e.name, e.hardware_id, e.software_version,
                     version_key(e.software_version or ""), "reported", updated)
                    for e in inventories[i]
                )  # fmt: skip
                if wanted:
                    desired.append((
                        vin, CHARGE_LIMIT, "i", 80.0, None, 1, stamp, "benchmark", None,
                        "pending", None, None,
                    ))  # fmt: skip
            for table, rows in ((TWINS, twins), (REPORTED, reported),
                                (personal_table, personal), (ECUS, ecus),
                                (DESIRED, desired)):  # fmt: skip
                _bulk_insert(connection, table, rows)
    if database.dialect == "postgresql":
        with database.session() as session:  # as autovacuum would after a load this size
            session.connection().exec_driver_sql("ANALYZE")
    return vins


def cache_key(database: Database, count: int) -> str:
    """Names a stocked fleet: its size, this module's shape and the schema it was built on
    (the migration heads and the migrations' text: a migration edited under the same revision
    id never reuses a fleet stocked before the edit)."""
    shape = repr((CACHE_VERSION, count, [p for p, _ in REPORTED_SIGNALS], database.head_revisions(),
                  _migrations_digest()))
    return f"{count}_{hashlib.sha256(shape.encode()).hexdigest()[:10]}"


def _migrations_digest() -> str:
    import drivetrain

    digest = hashlib.sha256()
    root = Path(drivetrain.__file__).parent
    for script in sorted(root.glob("**/migrations/versions/*.py")):
        digest.update(script.relative_to(root).as_posix().encode())
        digest.update(script.read_bytes())
    return digest.hexdigest()


# --- CPU accounting ----------------------------------------------------------------------------


class ServerCpu:
    """CPU seconds of this process's PostgreSQL backends (a local server; None elsewhere)."""

    def __init__(self, database: Database) -> None:
        self._pids: set[int] = set()
        self.available = database.dialect == "postgresql" and os.path.isdir("/proc")
        if self.available:
            event.listen(database.engine, "connect", self._connected)
            database.engine.pool.dispose()  # so every connection from now on is seen

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        self._pids.add(int(dbapi_connection.info.backend_pid))

    def seconds(self) -> float | None:
        """CPU seconds (user + system) the backends have used so far, or None."""
        if not self.available:
            return None
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # a remote server, or a backend that has gone
                self.available = False
                return None
            total += (int(fields[11]) + int(fields[12])) / tick
        return total


# --- updates -----------------------------------------------------------------------------------


Reports = dict[str, dict[str, tuple[Any, datetime]]]


def _batches(vins: Sequence[str], per_batch: int, ts: datetime, rng: random.Random) -> list[Reports]:
    return [
        {vin: {path: (draw(rng), ts) for path, draw in REPORTED_SIGNALS} for vin in vins[i : i + per_batch]}
        for i in range(0, len(vins), per_batch)
    ]


def _timed(work: Callable[[], None], server: ServerCpu) -> tuple[float, float, float | None]:
    """(wall s, this process's CPU s, server CPU s or None) of ``work()``."""
    server_before = server.seconds()
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_after = server.seconds()
    spent = None if server_before is None or server_after is None else server_after - server_before
    return wall, cpu, spent


def _ours(database: Database, batches: Iterable[Reports]) -> None:
    for reports in batches:
        with database.session() as session:
            apply_reported(session, reports)


def _core_baseline(database: Database, batches: Iterable[Reports]) -> None:
    """SQLAlchemy Core's upsert (``on_conflict_do_update``, newer measurement wins),
    executemany over the batch's rows; one commit per batch."""
    dialect = postgresql if database.dialect == "postgresql" else sqlite
    statement = dialect.insert(REPORTED)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["vin", "path"],
        set_={c: excluded[c] for c in ("kind", "num", "text", "ts_ns", "updated_ns")},
        where=excluded.ts_ns > REPORTED.c.ts_ns,
    )
    for reports in batches:
        now_ns = time.time_ns()
        rows = []
        for vin, values in reports.items():
            for path, (value, ts) in values.items():
                kind, num, text = _stored(value)
                rows.append({"vin": vin, "path": path, "kind": kind, "num": num, "text": text,
                             "ts_ns": int(ts.timestamp() * 1e9), "updated_ns": now_ns})  # fmt: skip
        with database.engine.begin() as connection:
            connection.execute(statement, rows)


def measure_updates(
    database: Database, vins: Sequence[str], *, batch_vehicles: int, baseline_vehicles: int,
    repeats: int, server: ServerCpu, say: Callable[[str], None],
) -> dict[str, Any]:
    """Every value of ``vins`` newer, in batches of ``batch_vehicles`` twins (one transaction
    each), ``repeats`` times; each pass paired with the Core-upsert baseline on
    ``baseline_vehicles`` of them in batches of the same size. Rates are medians, the ratio the
    median of per-pair ratios."""
    rng = random.Random(5)
    sample = list(vins[:baseline_vehicles])
    per_twin = len(REPORTED_SIGNALS)
    base = datetime.now(UTC)
    ours_rate, ours_cpu_rate, core_rate, core_cpu_rate, ratios = [], [], [], [], []
    for repeat in range(repeats):
        ts = base + timedelta(seconds=2 * repeat + 1)
        ours = _batches(vins, batch_vehicles, ts, rng)
        core = _batches(sample, batch_vehicles, ts + timedelta(seconds=1), rng)
        wall, cpu, server_cpu = _timed(partial(_ours, database, ours), server)
        core_wall, core_cpu, core_server_cpu = _timed(partial(_core_baseline, database, core), server)
        values, sample_values = len(vins) * per_twin, len(sample) * per_twin
        ours_rate.append(values / wall)
        ours_cpu_rate.append(values / (cpu + (server_cpu or 0.0)))
        core_rate.append(sample_values / core_wall)
        core_cpu_rate.append(sample_values / (core_cpu + (core_server_cpu or 0.0)))
        ratios.append(ours_rate[-1] / core_rate[-1])
        say(f"realistic pair {repeat + 1}/{repeats}: ours {ours_rate[-1]:,.0f}/s "
            f"({ours_cpu_rate[-1]:,.0f}/CPU-s), Core upsert {core_rate[-1]:,.0f}/s "
            f"({core_cpu_rate[-1]:,.0f}/CPU-s)")  # fmt: skip
    return {
        "updated_twins": len(vins),
        "values_per_pass": len(vins) * per_twin,
        "batch_values": batch_vehicles * per_twin,
        "updates_per_s": round(statistics.median(ours_rate)),
        "updates_per_cpu_s": round(statistics.median(ours_cpu_rate)),
        "cpu_counts_server": server.available,
        "core_upsert_baseline_updates_per_s": round(statistics.median(core_rate)),
        "core_upsert_baseline_updates_per_cpu_s": round(statistics.median(core_cpu_rate)),
        "cpu_ratio": round(statistics.median(ours_cpu_rate) / statistics.median(core_cpu_rate), 2),
        "baseline_sample_values": len(sample) * per_twin,
        "ratio": round(statistics.median(ratios), 2),
    }


# --- the query ---------------------------------------------------------------------------------


def measure_query(database: Database, runs: int) -> dict[str, Any]:
    """p50/p90 of :data:`QUERY` (first page of 100 and the total) after one warm-up run, in
    wall milliseconds, and the p50 of this process's CPU time per run (on SQLite the whole
    cost; on PostgreSQL the server's, parallel workers included, is not in it)."""
    times, cpu_times, total = [], [], 0
    for run in range(runs + 1):
        started, cpu = time.perf_counter(), time.process_time()
        with database.session() as session:
            page = query_twins(session, TENANT, QUERY, limit=100)
        elapsed_ms = (time.perf_counter() - started) * 1000
        total = page.total
        if run:
            times.append(elapsed_ms)
            cpu_times.append((time.process_time() - cpu) * 1000)
    times.sort()
    return {
        "query": QUERY,
        "query_matches": total,
        "query_runs": runs,
        "query_p50_ms": round(statistics.median(times), 1),
        "query_p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 1),
        "query_p50_client_cpu_ms": round(statistics.median(cpu_times), 1),
    }
