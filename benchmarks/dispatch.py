"""Benchmark: a job to 100,000 twins — targets resolved, messages signed and handed to the
vehicle link — in vehicles per CPU-second, on one core.

    python benchmarks/dispatch.py [--quick] [--twins N] [--baseline-vehicles B] [--repeats R]
                                  [--database-url URL]

Ours: ``create_job`` with the fleet query ``region == "EU"`` over ``--twins`` twins of one
tenant (default 100,000 EU twins, plus 10 % US twins the query leaves out; ``--quick``:
20,000), which resolves the targets and queues one delivery each, then one
``Dispatcher.run_once``, which claims them, seals each command for its vehicle with the cloud
key (Ed25519, wire format v1) and publishes it retained, QoS 1, on the in-process transport.
Between repeats the previous job's deliveries are settled (untimed) so the vehicles' slots are
free again.

Baseline, in the same run on the same twins: the straightforward per-vehicle loop — for each
target, one transaction that inserts its delivery row through the ORM, seals the command with
``seal_json`` and publishes it, and one more that marks it delivered — on a sample of
``--baseline-vehicles`` (default 2,000; ``--quick``: 300), as a rate.

The process is pinned to one CPU; figures are CPU-seconds of this process
(``time.process_time``), so a busy machine slows the wall clock but not the figure much.
Each of ``--repeats`` pairs (default 3; quick 2) runs ours then the baseline; figures are
medians, ``ratio`` is the median of per-pair ratios. Goal: >= 10,000 vehicles/s.
Progress goes to stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import insert, update

from drivetrain.cloud.commands import Dispatcher, Payload, create_job
from drivetrain.cloud.commands.models import DELIVERIES, DeliveryRow
from drivetrain.cloud.infra import Database, create_tenant
from drivetrain.cloud.twins.models import TWINS
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import COMMANDS, InProcessTransport, vehicle_topic
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import Command, MessageKind, new_message_id, seal_json

TENANT = "bench-dispatch"
QUERY = 'region == "EU"'
GOAL_VEHICLES_PER_S = 10_000
err = Console(stderr=True)


def _pin_one_core() -> int:
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return len(os.sched_getaffinity(0))


def _stock(database: Database, eu: int) -> None:
    """``eu`` EU twins and 10 % as many US twins (direct bulk insert)."""
    now = datetime.now(UTC)
    total = eu + eu // 10
    with database.session() as session:
        create_tenant(session, TENANT, actor="benchmark")
    for start in range(0, total, 10_000):
        rows = [
            {"vin": f"DTB{i:014d}", "tenant_id": TENANT, "model": "compact-bev",
             "region": "EU" if i < eu else "US", "owner": None, "desired_version": 0,
             "send_pending": False, "sent_seq": 0, "created_at": now}
            for i in range(start, min(total, start + 10_000))
        ]
        with database.session() as session:
            session.connection().execute(insert(TWINS), rows)


def _settle(database: Database) -> None:
    """Mark every delivered message acknowledged (frees the vehicles' slots; untimed)."""
    d = DELIVERIES.c
    with database.session() as session:
        session.execute(update(DELIVERIES).where(d.state == "delivered")
                        .values(state="succeeded", clear_pending=False))


def _ours(database: Database, key: SigningKey) -> tuple[float, float, int, dict[str, float]]:
    """(CPU s, wall s, vehicles sent, phase CPU s) of one job to every EU twin."""
    with InProcessTransport() as link:
        dispatcher = Dispatcher(database, link, key)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with database.session() as session:
            job = create_job(session, tenant=TENANT, actor="benchmark",
                             payload=Payload.command("flash_lights", {"times": 2}), query=QUERY)
        cpu1 = time.process_time()
        report = dispatcher.run_once()
        cpu2, wall2 = time.process_time(), time.perf_counter()
        published = link.stats().published
    if report.sent != job.counts.queued or published < report.sent:
        raise SystemExit(f"dispatched {report.sent} of {job.counts.queued} (published "
                         f"{published})")
    return cpu2 - cpu0, wall2 - wall0, report.sent, {"resolve_s": cpu1 - cpu0,
                                                     "dispatch_s": cpu2 - cpu1}


def _baseline(database: Database, key: SigningKey, vins: list[str]) -> tuple[float, int]:
    """(CPU s, vehicles) of the per-vehicle loop on ``vins``."""
    with database.session() as session:
        job = create_job(session, tenant=TENANT, actor="benchmark",
                         payload=Payload.command("flash_lights", {"times": 2}), vins=vins[:1])
    with InProcessTransport() as link:
        cpu0 = time.process_time()
        for vin in vins:
            with database.session() as session:
                row = DeliveryRow(job_id=job.job_id, tenant_id=TENANT, vin=vin,
                                  channel=COMMANDS, label="", state="queued", attempts=0,
                                  queued_at=datetime.now(UTC), clear_pending=False)
                session.add(row)
                session.flush()
                message_id = new_message_id()
                body = Command("flash_lights", {"times": 2}, time.time_ns() + 300 * 10**9)
                payload = seal_json(MessageKind.COMMAND, vin, body.to_dict(), key=key,
                                    seq=time.time_ns() // 1000, message_id=message_id)
                link.publish(vehicle_topic(vin, COMMANDS), payload, qos=1, retain=True)
            with database.session() as session:
                stored = session.get(DeliveryRow, row.delivery_id)
                assert stored is not None
                stored.state, stored.message_id = "delivered", message_id
                stored.sent_at, stored.attempts = datetime.now(UTC), 1
        return time.process_time() - cpu0, len(vins)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 twins; under a minute")
    parser.add_argument("--twins", type=int, help="EU twins targeted (default 100,000)")
    parser.add_argument("--baseline-vehicles", type=int, help="vehicles in the baseline sample")
    parser.add_argument("--repeats", type=int, help="measurement pairs (default 3; quick 2)")
    parser.add_argument("--database-url", help="state database (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    twins = args.twins or (20_000 if args.quick else 100_000)
    sample = min(twins, args.baseline_vehicles or (300 if args.quick else 2_000))
    repeats = args.repeats or (2 if args.quick else 3)
    cores = _pin_one_core()
    key = SigningKey.generate()
    builtin_catalog()  # parsed once per process (queries check paths against it); untimed
    ours: list[float] = []
    walls: list[float] = []
    base: list[float] = []
    ratios: list[float] = []
    phases: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="drivetrain-dispatch-bench-") as tmp:
        database = Database(args.database_url or f"sqlite:///{Path(tmp) / 'state.db'}")
        try:
            database.upgrade()
            err.print(f"stocking {twins:,} EU twins (+{twins // 10:,} US)")
            _stock(database, twins)
            vins = [f"DTB{i:014d}" for i in range(sample)]
            for run in range(repeats):
                cpu, wall, sent, phase = _ours(database, key)
                _settle(database)
                base_cpu, base_n = _baseline(database, key, vins)
                _settle(database)
                rate, base_rate = sent / cpu, base_n / base_cpu
                ours.append(rate)
                walls.append(sent / wall)
                base.append(base_rate)
                ratios.append(rate / base_rate)
                phases.append(phase)
                err.print(f"run {run + 1}: {sent:,} vehicles in {cpu:.2f} CPU-s "
                          f"({rate:,.0f}/s; resolve {phase['resolve_s']:.2f} s, dispatch "
                          f"{phase['dispatch_s']:.2f} s); baseline {base_rate:,.0f}/s")
            dialect = database.dialect
        finally:
            database.dispose()
    result: dict[str, Any] = {
        "database": dialect,
        "cores": cores,
        "vehicles": twins,
        "repeats": repeats,
        "vehicles_per_s": round(statistics.median(ours)),
        "wall_vehicles_per_s": round(statistics.median(walls)),
        "resolve_s": round(statistics.median(p["resolve_s"] for p in phases), 3),
        "dispatch_s": round(statistics.median(p["dispatch_s"] for p in phases), 3),
        "baseline": "per-vehicle ORM loop (a transaction per vehicle, seal_json, publish)",
        "baseline_vehicles": sample,
        "baseline_vehicles_per_s": round(statistics.median(base)),
        "ratio": round(statistics.median(ratios), 2),
        "goal_vehicles_per_s": GOAL_VEHICLES_PER_S,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
