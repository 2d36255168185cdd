"""Benchmark: ingest throughput of the fleet profile with 1 and 2 worker processes.

    python benchmarks/scale.py [--quick] [--messages N] [--vehicles V] [--samples S]
                               [--database postgresql+psycopg://...]

The whole scaled-out path on this machine, with the real servers: simulated vehicles publish
signed telemetry envelopes (``--samples`` samples each, default 20: a vehicle's 1-2 s of
signals) with QoS 1 to a **Mosquitto** broker started for the run; ``drivetrain worker
ingest`` processes in the **fleet profile** (``DRIVETRAIN_PROFILE=fleet``) share the
subscription, commit each micro-batch to the lake and the PostgreSQL state, and announce it on
the **JetStream** backbone (a ``nats-server`` node started for the run, stream
``telemetry-validated``); a consumer group in this process reads the announcements and counts
each batch id once.

Figures per run: ``messages_per_s`` (first publish to last announcement), ``loss`` (messages
sent and never announced; must be 0), ``duplicates`` (announcements of a batch id already
seen), ``lag_ms`` p50/p99 (publish → announcement read downstream), ``peak_rss_mb`` (the
largest worker's peak resident memory) and ``cpu_s`` per worker.

Runs: the **baseline** is the same messages through one worker of the embedded profile on the
same broker and database — no backbone, nothing announced — measured in the same run; then
the fleet profile with 1 and with 2 workers (``--workers`` lists them). ``ratio`` is the fleet
profile's ``messages_per_s_per_worker`` at the largest worker count over the baseline's
messages/s (the cost of the backbone and of sharing two cores among workers, broker, server
and database). On this 2-core machine every process competes for the same cores, so the
2-worker figure shows the contention, not the scaling a host per worker gives; docs/scale.md
turns the per-worker figure into a capacity model.

The state database: ``--database`` or ``$DRIVETRAIN_TEST_POSTGRES_URL`` (a fresh schema per
run, dropped afterwards). Progress goes to stderr; the last line on stdout is one JSON object
(benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

err = Console(stderr=True)
TENANT = "scale"


@dataclass
class Announcements:
    """What the downstream consumer group saw: first arrival per batch id, duplicates."""

    expected: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0

    def __call__(self, message: Any) -> None:
        now = time.perf_counter()
        events = json.loads(message.payload)["events"]
        with self.lock:
            for event in events:
                batch_id = event["data"]["batch_id"]
                if batch_id not in self.expected:  # an earlier run's, still in the stream
                    continue
                if batch_id in self.arrived:
                    self.duplicates += 1
                else:
                    self.arrived[batch_id] = now


def _provision(database: Any, vehicles: int) -> list[Any]:
    from drivetrain.cloud.fleet import provision_vehicle
    from drivetrain.cloud.infra import create_tenant
    from drivetrain.cloud.privacy import set_consent
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

    rng = random.Random(3)
    cloud = SigningKey.from_seed(b"s" * 32).verify_key
    creds = []
    with database.session() as session:
        create_tenant(session, TENANT, actor="benchmark")
        for _ in range(vehicles):
            vehicle, cred = provision_vehicle(
                session, tenant=TENANT, model="compact-bev", region="EU", cloud_key=cloud,
                actor="benchmark", rng=rng)
            set_consent(session, vin=vehicle.vin, tenant=TENANT, categories=PRIVACY_CATEGORIES,
                        source="benchmark", actor="benchmark")
            creds.append(cred)
    return creds


def _messages(creds: Sequence[Any], count: int, samples: int) -> list[tuple[str, str, bytes]]:
    """``(batch_id, topic, payload)`` of ``count`` signed envelopes, round-robin over the
    vehicles, each ``samples`` in-range samples of a few signals."""
    import numpy as np

    from drivetrain.core.transport import vehicle_topic
    from drivetrain.core.wire import samples_table, seal_telemetry

    paths = ["Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "Vehicle.Speed"]
    start = time.time_ns() - 60 * 10**9
    out = []
    for i in range(count):
        cred = creds[i % len(creds)]
        ts = start + np.arange(samples, dtype=np.int64) * 100_000_000 + i
        table = samples_table(paths, [j % 2 for j in range(samples)], ts,
                              [50.0 + (j % 7) for j in range(samples)])
        batch_id = uuid.uuid4().hex
        payload = seal_telemetry(cred.vin, table, key=cred.signing_key, seq=i,
                                 message_id=batch_id)
        out.append((batch_id, vehicle_topic(cred.vin, "telemetry"), payload))
    return out


def _proc(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return cpu, peak


@contextmanager
def _workers(count: int, env: dict[str, str], root: Path, group: str) -> Iterator[list[Any]]:
    procs = []
    for i in range(count):
        log = (root / f"{group}-w{i}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "drivetrain", "worker", "ingest", "--group", group,
             "--client-id", f"{group}-w{i}", "--session-expiry-s", "60"],
            env=env, stdout=log, stderr=log))
    try:
        deadline = time.monotonic() + 90
        while not all("consuming" in (root / f"{group}-w{i}.log").read_text()
                      for i in range(count)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                tails = [(root / f"{group}-w{i}.log").read_text()[-800:] for i in range(count)]
                raise RuntimeError(f"workers did not start: {tails}")
            time.sleep(0.1)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def _stored(database: Any) -> int:
    from drivetrain.cloud.ingest import ingest_stats

    with database.session() as session:
        stats = ingest_stats(session, tenant=TENANT)
    return sum(o.messages for o in stats.totals if o.outcome == "accepted")


def run(label: str, workers: int, fleet: bool, urls: dict[str, str], root: Path,
        messages: list[tuple[str, str, bytes]], timeout_s: float) -> dict[str, Any]:
    """One measured run: ``workers`` processes, fleet profile or embedded."""
    from drivetrain.cloud.infra import Database
    from drivetrain.core.transport.jetstream import JetStreamTransport
    from drivetrain.core.transport.mqtt import MqttTransport

    group = f"{label}{os.getpid()}"
    env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(root / f"data-{label}"),
           "DRIVETRAIN_DATABASE_URL": urls["database"], "DRIVETRAIN_BROKER_URL": urls["broker"],
           "DRIVETRAIN_CONFIG": str(root / "none.toml"),
           "DRIVETRAIN_PROFILE": "fleet" if fleet else "embedded"}
    if fleet:
        env["DRIVETRAIN_BACKBONE_URL"] = urls["backbone"]
    database = Database(urls["database"])
    seen = Announcements(expected={m[0] for m in messages})
    consumer = None
    before = _stored(database)
    try:
        with _workers(workers, env, root, group) as procs:
            if fleet:
                consumer = JetStreamTransport(urls["backbone"], client_id=f"{group}-lake")
                consumer.subscribe(f"$share/{group}/dt/platform/v1/telemetry", seen)
            err.print(f"[{label}] {workers} worker(s) up; publishing {len(messages):,} messages")
            sent_at: dict[str, float] = {}
            started = time.perf_counter()
            with MqttTransport(urls["broker"], client_id=f"{group}-vehicles") as publisher:
                tickets = []
                for batch_id, topic, payload in messages:
                    sent_at[batch_id] = time.perf_counter()
                    tickets.append(publisher.publish_async(topic, payload, qos=1))
                for ticket in tickets:
                    ticket.wait(120)
            deadline = time.monotonic() + timeout_s
            stored = 0
            while time.monotonic() < deadline:
                stored = _stored(database) - before
                done = len(seen.arrived) if fleet else stored
                if done >= len(messages):
                    break
                time.sleep(0.05 if fleet else 0.1)
            finished = (max(seen.arrived.values()) if fleet and seen.arrived
                        else time.perf_counter())
            elapsed = finished - started
            usage = [_proc(p.pid) for p in procs]
            if (len(seen.arrived) if fleet else stored) < len(messages):
                for i in range(workers):
                    err.print((root / f"{group}-w{i}.log").read_text()[-3000:])
    finally:
        if consumer is not None:
            consumer.close()
        database.dispose()
    delivered = len(seen.arrived) if fleet else stored
    lags = sorted((seen.arrived[b] - sent_at[b]) * 1000 for b in seen.arrived if b in sent_at)
    figures: dict[str, Any] = {
        "workers": workers,
        "profile": "fleet" if fleet else "embedded",
        "messages": len(messages),
        "messages_per_s": round(delivered / elapsed, 1),
        "messages_per_s_per_worker": round(delivered / elapsed / workers, 1),
        "loss": len(messages) - delivered,
        "stored": stored,
        "seconds": round(elapsed, 2),
        "cpu_s_per_worker": [round(u[0], 2) for u in usage],
        "peak_rss_mb": round(max(u[1] for u in usage), 1),
    }
    if fleet:
        figures["duplicates"] = seen.duplicates
        figures["lag_ms_p50"] = round(statistics.median(lags), 1) if lags else None
        figures["lag_ms_p99"] = round(lags[int(0.99 * (len(lags) - 1))], 1) if lags else None
    err.print(f"[{label}] {figures}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,500 messages; under a minute")
    parser.add_argument("--messages", type=int, help="messages per run (default 6,000)")
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20, help="samples per message")
    parser.add_argument("--workers", default="1,2", help="worker counts of the fleet runs")
    parser.add_argument("--database", help="PostgreSQL server URL "
                        "(default: $DRIVETRAIN_TEST_POSTGRES_URL)")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="longest wait for a run's messages to come through, seconds")
    args = parser.parse_args(argv)
    count = args.messages or (1500 if args.quick else 6000)
    worker_counts = [int(w) for w in args.workers.split(",")]

    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.infra.testing import (
        temporary_postgres_database,
        temporary_postgres_schema,
    )
    from drivetrain.core.errors import ConfigurationError
    from drivetrain.core.transport.jetstream_local import LocalJetStream
    from drivetrain.core.transport.testing import PrivateBroker

    server = args.database or os.environ.get("DRIVETRAIN_TEST_POSTGRES_URL")
    if not server:
        err.print("needs PostgreSQL: --database URL or $DRIVETRAIN_TEST_POSTGRES_URL "
                  "(source scripts/services.sh; ensure_postgres)")
        return 2
    results = {}
    with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
        root = Path(tmp)
        try:
            broker = PrivateBroker(root / "mosquitto")
            backbone = LocalJetStream(root / "nats", nodes=1)
        except ConfigurationError as e:
            err.print(str(e))
            return 2
        broker.start()
        backbone.start_all()
        try:
            with temporary_postgres_database(server, "dt_scale") as db_url, \
                    temporary_postgres_schema(db_url) as url:
                database = Database(url)
                database.upgrade()
                creds = _provision(database, args.vehicles)
                database.dispose()
                urls = {"database": url, "broker": broker.url, "backbone": backbone.url}
                runs = [("baseline", 1, False)] + [(f"fleet{w}", w, True) for w in worker_counts]
                for label, workers, fleet in runs:
                    messages = _messages(creds, count, args.samples)  # fresh batch ids
                    results[label] = run(label, workers, fleet, urls, root, messages,
                                         args.timeout_s)
        finally:
            backbone.stop()
            broker.kill()
    largest = results[f"fleet{max(worker_counts)}"]
    baseline = results["baseline"]
    summary = {
        "benchmark": "scale",
        "messages": count,
        "samples_per_message": args.samples,
        "workers": max(worker_counts),
        "messages_per_s": largest["messages_per_s"],
        "messages_per_s_per_worker": largest["messages_per_s_per_worker"],
        "loss": sum(r["loss"] for k, r in results.items() if k != "baseline"),
        "duplicates": sum(r.get("duplicates", 0) for r in results.values()),
        "lag_ms_p50": largest["lag_ms_p50"],
        "lag_ms_p99": largest["lag_ms_p99"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results.values()),
        "runs": {k: v for k, v in results.items() if k != "baseline"},
        "baseline": {"name": "one embedded-profile worker, no backbone", **baseline},
        "ratio": round(largest["messages_per_s_per_worker"] / baseline["messages_per_s"], 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
