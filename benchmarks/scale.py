"""Benchmark: ingest throughput of the fleet profile with 1 and 2 worker processes.

    python benchmarks/scale.py [--quick] [--messages N] [--vehicles V] [--samples S]
                               [--workers 1,2] [--database postgresql+psycopg://...]

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
seen), ``lag_ms`` p50/p99 (publish → announcement read downstream; every message is sent at
once, so this is the time to drain a burst, not the latency of a paced stream),
``peak_rss_mb`` (the largest worker's peak resident memory), ``cpu_s`` per worker from ready to
the end and ``messages_per_cpu_s`` (messages per CPU-second of the workers: the figure a busy
shared machine moves least, and the one the capacity model uses).

Last, ``backbone_messages_per_s``: announcement-sized messages (300 bytes) the JetStream node
stores per second from one publisher with up to 1,000 in flight, and
``backbone_server_cpu_us_per_message``: the nats-server's CPU time per message stored (what
sizes JetStream nodes; the Python publisher, not the server, limits the rate here).

Runs: the **baseline** is the same messages through one worker of the embedded profile on the
same broker and database — no backbone, nothing announced — measured in the same run; then
the fleet profile with 1 and with 2 workers (``--workers`` lists them). ``ratio`` is the fleet
profile's ``messages_per_s_per_worker`` at the largest worker count over the baseline's
messages/s (the cost of the backbone and of sharing two cores among workers, broker, server
and database); ``cpu_ratio`` the same in messages per CPU-second. On this 2-core machine every process competes for the same cores, so the
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

err = Console(stderr=True, log_time=False)
T0 = time.monotonic()


def note(text: str) -> None:
    err.print(f"[{time.monotonic() - T0:5.1f} s] {text}")
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


class Workers:
    """``drivetrain worker ingest`` processes of one group and profile, started in the
    background (``spawn``) and waited for (``ready``), so startups overlap."""

    def __init__(self, group: str, env: dict[str, str], root: Path) -> None:
        self.group, self.env, self.root = group, env, root
        self.procs: list[subprocess.Popen[bytes]] = []

    def _log(self, i: int) -> Path:
        return self.root / f"{self.group}-w{i}.log"

    def _popen(self, i: int, mode: str) -> subprocess.Popen[bytes]:
        with self._log(i).open(mode) as log:
            return subprocess.Popen(
                [sys.executable, "-m", "drivetrain", "worker", "ingest", "--group",
                 self.group, "--client-id", f"{self.group}-w{i}", "--session-expiry-s",
                 "60"], env=self.env, stdout=log, stderr=log)

    def spawn(self, count: int) -> Workers:
        for _ in range(count):
            self.procs.append(self._popen(len(self.procs), "wb"))
        return self

    def crash_and_restart(self, i: int, timeout_s: float = 120.0) -> subprocess.Popen[bytes]:
        """SIGKILL worker ``i`` (nothing flushed, its micro-batch unacknowledged) and start it
        again with the same client id (its MQTT session resumes); returns once it consumes."""
        self.procs[i].kill()
        self.procs[i].wait(30)
        mark = self._log(i).stat().st_size
        self.procs[i] = self._popen(i, "ab")
        deadline = time.monotonic() + timeout_s
        while "consuming" not in self._log(i).read_bytes()[mark:].decode(errors="replace"):
            if time.monotonic() > deadline or self.procs[i].poll() is not None:
                raise RuntimeError(f"worker {i} did not restart: "
                                   f"{self._log(i).read_text()[-800:]}")
            time.sleep(0.1)
        return self.procs[i]

    def ready(self, timeout_s: float = 120.0) -> list[subprocess.Popen[bytes]]:
        deadline = time.monotonic() + timeout_s
        while not all("consuming" in self._log(i).read_text() for i in range(len(self.procs))):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                tails = [self._log(i).read_text()[-800:] for i in range(len(self.procs))]
                raise RuntimeError(f"workers did not start: {tails}")
            time.sleep(0.1)
        return self.procs

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(60)


def _stored(database: Any) -> int:
    from drivetrain.cloud.ingest import ingest_stats

    with database.session() as session:
        stats = ingest_stats(session, tenant=TENANT)
    return sum(o.messages for o in stats.totals if o.outcome == "accepted")


def worker_env(label: str, fleet: bool, urls: dict[str, str], root: Path) -> dict[str, str]:
    env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(root / f"data-{label}"),
           "DRIVETRAIN_DATABASE_URL": urls["database"], "DRIVETRAIN_BROKER_URL": urls["broker"],
           "DRIVETRAIN_CONFIG": str(root / "none.toml"),
           "DRIVETRAIN_PROFILE": "fleet" if fleet else "embedded"}
    if fleet:
        env["DRIVETRAIN_BACKBONE_URL"] = urls["backbone"]
    return env


def run(label: str, workers: Workers, fleet: bool, urls: dict[str, str],
        messages: list[tuple[str, str, bytes]], timeout_s: float) -> dict[str, Any]:
    """One measured run through the (started) ``workers``, fleet profile or embedded."""
    from drivetrain.cloud.infra import Database
    from drivetrain.core.transport.jetstream import JetStreamTransport
    from drivetrain.core.transport.mqtt import MqttTransport

    group = f"{label}{os.getpid()}"
    database = Database(urls["database"])
    seen = Announcements(expected={m[0] for m in messages})
    consumer = None
    before = _stored(database)
    try:
        procs = workers.ready()
        if fleet:
            consumer = JetStreamTransport(urls["backbone"], client_id=f"{group}-lake")
            consumer.subscribe(f"$share/{group}/dt/platform/v1/telemetry", seen)
        note(f"{label}: {len(procs)} worker(s) up; publishing {len(messages):,} messages")
        cpu_ready = [_proc(p.pid)[0] for p in procs]
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
            if (len(seen.arrived) if fleet else stored) >= len(messages):
                break
            time.sleep(0.05)
        finished = (max(seen.arrived.values()) if fleet and seen.arrived
                    else time.perf_counter())
        elapsed = finished - started
        usage = [_proc(p.pid) for p in procs]
    finally:
        if consumer is not None:
            consumer.close()
        database.dispose()
    delivered = len(seen.arrived) if fleet else stored
    if delivered < len(messages):
        for proc in procs:
            err.print(f"worker {proc.pid} log: {workers.root}")
    count = len(procs)
    lags = sorted((seen.arrived[b] - sent_at[b]) * 1000 for b in seen.arrived if b in sent_at)
    figures: dict[str, Any] = {
        "workers": count,
        "profile": "fleet" if fleet else "embedded",
        "messages": len(messages),
        "messages_per_s": round(delivered / elapsed, 1),
        "messages_per_s_per_worker": round(delivered / elapsed / count, 1),
        "loss": len(messages) - delivered,
        "stored": stored,
        "seconds": round(elapsed, 2),
        "cpu_s_per_worker": [round(u[0] - c, 2) for u, c in zip(usage, cpu_ready, strict=True)],
        "messages_per_cpu_s": round(delivered / max(0.01, sum(u[0] for u in usage)
                                                   - sum(cpu_ready)), 1),
        "peak_rss_mb": round(max(u[1] for u in usage), 1),
    }
    if fleet:
        figures["duplicates"] = seen.duplicates
        figures["lag_ms_p50"] = round(statistics.median(lags), 1) if lags else None
        figures["lag_ms_p99"] = round(lags[int(0.99 * (len(lags) - 1))], 1) if lags else None
    note(f"{label}: {figures}")
    return figures


def backbone_rate(url: str, server_pid: int, count: int) -> tuple[float, float]:
    """Announcement-sized messages (300 bytes, one id each) stored per second by the backbone
    node, published with every acknowledgement awaited (up to 1,000 in flight), and the
    server's CPU microseconds per message stored."""
    from drivetrain.core.transport.jetstream import JetStreamTransport

    payload = b"x" * 300
    with JetStreamTransport(url, client_id="rate") as link:
        cpu_before = _proc(server_pid)[0]
        started = time.perf_counter()
        for first in range(0, count, 1000):
            tickets = [link.publish_async("dt/platform/v1/status/rate", payload,
                                          msg_id=f"r{i}")
                       for i in range(first, min(count, first + 1000))]
            for ticket in tickets:
                ticket.wait(60)
        elapsed = time.perf_counter() - started
        cpu_us = (_proc(server_pid)[0] - cpu_before) * 1e6 / count
    return count / elapsed, cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 messages; under a minute")
    parser.add_argument("--messages", type=int, help="messages per run (default 6,000)")
    parser.add_argument("--vehicles", type=int, help="vehicles sending (default 50; --quick 20)")
    parser.add_argument("--samples", type=int, default=20, help="samples per message")
    parser.add_argument("--workers", default="1,2", help="worker counts of the fleet runs")
    parser.add_argument("--database", help="PostgreSQL server URL "
                        "(default: $DRIVETRAIN_TEST_POSTGRES_URL)")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="longest wait for a run's messages to come through, seconds")
    args = parser.parse_args(argv)
    count = args.messages or (500 if args.quick else 6000)
    args.vehicles = args.vehicles or (20 if args.quick else 50)
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
            # Mosquitto queues 1,000 QoS 1 messages per session by default and drops the rest
            # (acknowledged to the publisher): size the queue for the burst (docs/scale.md)
            broker = PrivateBroker(root / "mosquitto",
                                   extra_config=f"max_queued_messages {max(10 * count, 1000)}")
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
                note(f"{args.vehicles} vehicles provisioned")
                database.dispose()
                urls = {"database": url, "broker": broker.url, "backbone": backbone.url}
                pid = os.getpid()
                # startups overlap: the embedded worker and the first fleet worker at once,
                # the second fleet worker (same group) while the first fleet run goes on
                embedded = Workers(f"embedded{pid}", worker_env("embedded", False, urls, root),
                                   root).spawn(1)
                fleet = Workers(f"fleet{pid}", worker_env("fleet", True, urls, root), root)
                fleet.spawn(1)
                try:
                    results["baseline"] = run("baseline", embedded, False, urls,
                                              _messages(creds, count, args.samples),
                                              args.timeout_s)
                    embedded.stop()
                    for workers in sorted(worker_counts):
                        fleet.spawn(workers - len(fleet.procs))
                        results[f"fleet{workers}"] = run(
                            f"fleet{workers}", fleet, True, urls,
                            _messages(creds, count, args.samples), args.timeout_s)
                finally:
                    embedded.stop()
                    fleet.stop()
                pid = backbone.pid(0)
                assert pid is not None
                rate, server_us = backbone_rate(backbone.url, pid, 2000 if args.quick else 20000)
                note(f"backbone: {rate:,.0f} messages/s stored (one node), "
                     f"{server_us:.1f} server CPU-us per message")
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
        "messages_per_cpu_s_per_worker": largest["messages_per_cpu_s"],
        "loss": sum(r["loss"] for k, r in results.items() if k != "baseline"),
        "duplicates": sum(r.get("duplicates", 0) for r in results.values()),
        "lag_ms_p50": largest["lag_ms_p50"],
        "lag_ms_p99": largest["lag_ms_p99"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results.values()),
        "backbone_messages_per_s": round(rate),
        "backbone_server_cpu_us_per_message": round(server_us, 1),
        "runs": {k: v for k, v in results.items() if k != "baseline"},
        "baseline": {"name": "one embedded-profile worker, no backbone", **baseline},
        "ratio": round(largest["messages_per_s_per_worker"] / baseline["messages_per_s"], 3),
        "cpu_ratio": round(largest["messages_per_cpu_s"] / baseline["messages_per_cpu_s"], 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
