"""Soak: a simulated fleet for N minutes through the whole scaled-out path.

    python benchmarks/soak.py [--minutes 30] [--quick] [--vehicles 200] [--every-s 10]
                              [--workers 2] [--database postgresql+psycopg://...]
                              [--cluster] [--kills] [--kill-every-s 120] [--node-down-s 20]
                              [--namespace soak]

Vehicles (``--vehicles``, each one signed telemetry envelope every ``--every-s`` seconds,
spread evenly) publish with QoS 1 to a **Mosquitto** broker started for the run;
``drivetrain worker ingest`` processes in the fleet profile (``--workers``, one shared
subscription) commit each micro-batch to the lake and the PostgreSQL twins and announce it on
a **JetStream** node started for the run; a ``drivetrain worker consume`` process — the
platform's consumer groups ``lake-activity`` (``telemetry-validated``) and ``twin-activity``
(``twin-reported``) — applies the announcements to the state, once each.

Printed every ``--report-s`` seconds and at the end (stderr): messages sent, in the lake, seen
by the consumers; p50/p99 end-to-end latency so far; the resident memory of every process.

- **vehicle → lake**: from a message's publish to its batch's announcement on
  ``telemetry-validated`` arriving here (the lake append and the twin update are committed
  before the announcement is sent).
- **vehicle → twin**: from a message's publish to the arrival here of the vehicle's next
  ``twin-reported`` change committed after it was sent (the workers write the newest values to
  the twins every 2 s under load: ``--twin-flush-s``).
- **loss**: messages sent minus batch ids found in the lake, and minus batches the
  ``lake-activity`` consumer counted (that one also must not count any twice:
  ``consumer_duplicates``); ``twin_loss``: vehicles whose twin does not hold the value of their
  last message.
- **memory**: VmRSS of each process (ingest workers, consumer, Mosquitto, nats-server, this
  process: publisher and observer) sampled every ``--sample-s``; ``rss_slope_mb_per_h`` is the
  steepest least-squares slope among the Drivetrain processes (the workers and the consumer)
  over the samples after the first fifth of the run (start-up allocations excluded), every
  process's in ``rss_slope_mb_per_h_by_process``; ``peak_rss_mb`` the largest VmHWM;
  ``rss_mb_by_minute`` each process's resident memory at every whole minute.

``--cluster`` runs the backbone on a **3-node JetStream cluster** on loopback (streams with 3
replicas) instead of one node. ``--kills`` then crashes part of the path every
``--kill-every-s`` seconds, from the first fifth of the run on, in turn: the node leading
``telemetry-validated`` (SIGKILL, started again on the same store ``--node-down-s`` later) and
an ingest worker (SIGKILL, started again at once with the same client id); ``kills`` in the
JSON lists each with its time. After a kill a process's memory slope counts from a minute
after its restart. Duplicates are counted where they would do harm: batch ids stored in the
lake more than once (``lake_duplicates``) and batches the ``lake-activity`` consumer counted
twice (``consumer_duplicates``); ``announcement_redeliveries`` counts announcements this
process's own consumer received again (at-least-once delivery, which the consumers absorb).
Every stream and subject lives in the backbone namespace ``--namespace`` (the workers' and the
consumer's ``DRIVETRAIN_BACKBONE_NAMESPACE``).

The last line on stdout is one JSON object (benchmarks/README.md).
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
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scale import TENANT, Workers, _proc, _provision, note, worker_env

#: The Drivetrain processes whose memory must stay flat. Not the servers (nats-server keeps
#: the streams' recent messages in memory) nor this process, which keeps every message's send
#: time and latency by design.
DRIVETRAIN = ("ingest0", "ingest1", "ingest2", "ingest3", "consumer")
#: A node's restart, or a worker's, counts for memory slopes only after this many seconds.
SETTLE_S = 60.0
PATHS = ["Vehicle.Powertrain.TractionBattery.StateOfCharge.Current", "Vehicle.Speed"]


@dataclass
class Observer:
    """Arrival times downstream: batch announcements and twin changes (fan-out consumers)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_at: dict[str, float] = field(default_factory=dict)
    lake: dict[str, float] = field(default_factory=dict)
    lake_ms: list[float] = field(default_factory=list)
    pending_twin: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    twin_ms: list[float] = field(default_factory=list)
    repeats: int = 0

    def sent(self, batch_id: str, vin: str, at: float) -> None:
        with self.lock:
            self.sent_at[batch_id] = at
            self.pending_twin[vin].append(at)

    def telemetry(self, message: Any) -> None:
        now = time.time()
        with self.lock:
            for event in json.loads(message.payload)["events"]:
                batch_id = event["data"]["batch_id"]
                if batch_id in self.lake:
                    self.repeats += 1
                elif batch_id in self.sent_at:
                    self.lake[batch_id] = now
                    self.lake_ms.append((now - self.sent_at[batch_id]) * 1000)

    def twins(self, message: Any) -> None:
        from datetime import datetime

        now = time.time()
        with self.lock:
            for event in json.loads(message.payload)["events"]:
                if event["kind"] != "reported":
                    continue
                committed = datetime.fromisoformat(event["at"]).timestamp()
                waiting = self.pending_twin.get(event["subject"])
                while waiting and waiting[0] <= committed:
                    self.twin_ms.append((now - waiting.popleft()) * 1000)


class Crashes:
    """The kills of ``--kills`` (see the module docstring): a JetStream node (with
    ``--cluster``) and an ingest worker in turn, every ``--kill-every-s`` from the first fifth of
    the run until 90 s before its end."""

    def __init__(self, args: argparse.Namespace, backbone: Any, workers: Any,
                 procs: dict[str, int]) -> None:
        self.enabled = bool(args.kills)
        self.every_s = float(args.kill_every_s)
        self.down_s = float(args.node_down_s)
        self.backbone, self.workers, self.procs = backbone, workers, procs
        self.events: list[dict[str, Any]] = []
        #: process name -> the run's second its last restart completed
        self.restarted: dict[str, float] = {}
        self.next_at: float | None = None
        self.turn = 0
        self.down: tuple[int, float, dict[str, Any]] | None = None

    def tick(self, elapsed: float, run_s: float, watcher: Any) -> None:
        if not self.enabled:
            return
        if self.down is not None and elapsed >= self.down[1]:
            index, _, event = self.down
            self.backbone.start(index)
            self.procs[f"nats{index}"] = self.backbone.pid(index) or 0
            self.restarted[f"nats{index}"] = event["restarted_at_s"] = round(elapsed, 1)
            note(f"{elapsed / 60:5.1f} min: JetStream node n{index + 1} started again")
            self.down = None
        if self.next_at is None:
            self.next_at = run_s / 5
        if elapsed < self.next_at or elapsed > run_s - 90 or self.down is not None:
            return
        self.next_at += self.every_s
        cluster = self.backbone.nodes > 1
        if cluster and self.turn % 2 == 0:
            self._kill_node(elapsed, watcher)
        else:
            self._kill_worker(elapsed)
        self.turn += 1

    def _kill_node(self, elapsed: float, watcher: Any) -> None:
        from drivetrain.core.errors import TransportError

        try:
            leader = watcher.stream_leader("telemetry-validated")
        except TransportError:
            leader = None
        index = int(leader[1:]) - 1 if leader else (self.turn // 2) % self.backbone.nodes
        self.backbone.kill(index)
        self.procs[f"nats{index}"] = 0
        event: dict[str, Any] = {
            "at_s": round(elapsed, 1), "killed": f"JetStream node n{index + 1}",
            "was_leader": leader == f"n{index + 1}",
        }
        self.events.append(event)
        self.down = (index, elapsed + self.down_s, event)
        note(f"{elapsed / 60:5.1f} min: killed JetStream node n{index + 1} "
             f"(leader of telemetry-validated: {leader})")

    def _kill_worker(self, elapsed: float) -> None:
        index = (self.turn // 2 if self.backbone.nodes > 1 else self.turn) % len(
            self.workers.procs)
        started = time.monotonic()
        proc = self.workers.crash_and_restart(index)
        back = elapsed + time.monotonic() - started
        self.procs[f"ingest{index}"] = proc.pid
        self.restarted[f"ingest{index}"] = round(back, 1)
        self.events.append({"at_s": round(elapsed, 1), "killed": f"ingest worker {index}",
                            "restarted_at_s": round(back, 1)})
        note(f"{elapsed / 60:5.1f} min: killed ingest worker {index}; consuming again after "
             f"{back - elapsed:.1f} s")


def message_value(seq: int) -> float:
    """Every sample's value in message ``seq``: whole (the twins keep Vehicle.Speed's
    integer type), in range for both signals, and different in a vehicle's consecutive
    messages, so its twin shows whether the last one landed."""
    return 20.0 + seq % 61


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[int(q * (len(ordered) - 1))], 1)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def slope_mb_per_h(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    if len(samples) < 3:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in samples)
    mean_m = statistics.fmean(m for _, m in samples)
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (m - mean_m) for t, m in samples) / var * 3600


def publish(
    creds: list[Any],
    link: Any,
    observer: Observer,
    stop: threading.Event,
    every_s: float,
    samples: int,
    counts: dict[str, int],
) -> None:
    """Each vehicle one envelope every ``every_s`` seconds, spread evenly over the period."""
    import numpy as np

    from drivetrain.core.transport import vehicle_topic
    from drivetrain.core.wire import samples_table, seal_telemetry

    gap = every_s / len(creds)
    seq = 0
    next_at = time.monotonic()
    while not stop.is_set():
        cred = creds[seq % len(creds)]
        now_ns = time.time_ns()
        ts = now_ns - (samples - np.arange(samples, dtype=np.int64)) * 100_000_000
        table = samples_table(
            PATHS, [j % 2 for j in range(samples)], ts, [message_value(seq)] * samples
        )
        batch_id = uuid.uuid4().hex
        payload = seal_telemetry(
            cred.vin, table, key=cred.signing_key, seq=seq, message_id=batch_id
        )
        observer.sent(batch_id, cred.vin, time.time())
        link.publish_async(vehicle_topic(cred.vin, "telemetry"), payload, qos=1)
        counts["sent"] += 1
        counts[f"last:{cred.vin}"] = seq
        seq += 1
        next_at += gap
        stop.wait(max(0.0, next_at - time.monotonic()))


def stored_batches(data_dir: Path, database_url: str, samples: int) -> tuple[set[str], int]:
    """Batch ids of the tenant's rows in the lake the workers wrote, and how many of them
    hold more rows than one message has samples (stored twice)."""
    from drivetrain.cloud.lake import Lake
    from drivetrain.core.settings import load_settings

    lake = Lake.open(load_settings(data_dir=data_dir, database_url=database_url))
    try:
        table = lake.sql(
            TENANT, "SELECT batch_id, COUNT(*) AS n FROM telemetry GROUP BY batch_id",
            max_rows=10**7)
    finally:
        lake.close()
    rows = table.column("n").to_pylist()
    return set(table.column("batch_id").to_pylist()), sum(1 for n in rows if n > samples)


def twins_missing(database: Any, creds: list[Any], last: dict[str, int]) -> list[str]:
    """Vehicles whose twin does not hold their last message's speed value, with what it
    holds instead."""
    from drivetrain.cloud.twins.service import get_twin

    missing = []
    with database.session() as session:
        for cred in creds:
            seq = last.get(f"last:{cred.vin}")
            if seq is None:
                continue
            reported = get_twin(session, cred.vin, tenant=TENANT).reported.get(PATHS[1])
            if reported is None or reported.value != message_value(seq):
                missing.append(
                    f"{cred.vin}: {message_value(seq)} sent, twin "
                    f"{reported.value if reported else None}"
                )
    return missing


def consumer_counts(database: Any) -> tuple[int, int]:
    """(batches the lake-activity consumer counted, messages its ledger holds)."""
    from drivetrain.cloud.streams import vehicle_activity
    from drivetrain.cloud.streams.ledger import applied_count

    with database.session() as session:
        counted = sum(a.lake_batches for a in vehicle_activity(session, tenant=TENANT))
        return counted, applied_count(session, "lake-activity")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--quick", action="store_true", help="2 minutes, 50 vehicles")
    parser.add_argument("--vehicles", type=int, help="vehicles sending (default 200)")
    parser.add_argument(
        "--every-s", type=float, default=10.0, help="seconds between a vehicle's messages"
    )
    parser.add_argument("--samples", type=int, default=20, help="samples per message")
    parser.add_argument("--workers", type=int, default=2, help="ingest worker processes")
    parser.add_argument("--report-s", type=float, help="progress every N s (default 60)")
    parser.add_argument("--sample-s", type=float, help="memory sample every N s (default 15)")
    parser.add_argument(
        "--database", help="PostgreSQL server URL (default: $DRIVETRAIN_TEST_POSTGRES_URL)"
    )
    parser.add_argument(
        "--cluster", action="store_true", help="a 3-node JetStream cluster, streams R3"
    )
    parser.add_argument(
        "--kills", action="store_true",
        help="crash a JetStream node (with --cluster) and an ingest worker in turn",
    )
    parser.add_argument(
        "--kill-every-s", type=float, default=120.0, help="seconds between kills (default 120)"
    )
    parser.add_argument(
        "--node-down-s", type=float, default=20.0, help="how long a killed node stays down"
    )
    parser.add_argument(
        "--namespace", default="soak", help="the backbone namespace of the run (default soak)"
    )
    args = parser.parse_args(argv)
    if args.kill_every_s <= 0 or args.node_down_s < 0:
        parser.error("--kill-every-s must be > 0 and --node-down-s >= 0")
    minutes = 2.0 if args.quick else args.minutes
    vehicles = args.vehicles or (50 if args.quick else 200)
    report_s = args.report_s or (20.0 if args.quick else 60.0)
    sample_s = args.sample_s or (5.0 if args.quick else 15.0)

    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.infra.testing import (
        temporary_postgres_database,
        temporary_postgres_schema,
    )
    from drivetrain.core.errors import ConfigurationError
    from drivetrain.core.transport.jetstream import JetStreamTransport
    from drivetrain.core.transport.jetstream_local import LocalJetStream
    from drivetrain.core.transport.mqtt import MqttTransport
    from drivetrain.core.transport.testing import PrivateBroker

    server = args.database or os.environ.get("DRIVETRAIN_TEST_POSTGRES_URL")
    if not server:
        note(
            "needs PostgreSQL: --database URL or $DRIVETRAIN_TEST_POSTGRES_URL "
            "(source scripts/services.sh; ensure_postgres)"
        )
        return 2
    observer = Observer()
    counts: dict[str, int] = {"sent": 0}
    memory: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="soak_") as tmp:
        root = Path(tmp)
        try:
            broker = PrivateBroker(root / "mosquitto")
            backbone = LocalJetStream(root / "nats", nodes=3 if args.cluster else 1)
        except ConfigurationError as e:
            note(str(e))
            return 2
        broker.start()
        backbone.start_all()
        procs: dict[str, int] = {"soak": os.getpid()}
        try:
            with (
                temporary_postgres_database(server, "dt_soak") as db_url,
                temporary_postgres_schema(db_url) as url,
            ):
                database = Database(url)
                database.upgrade()
                creds = _provision(database, vehicles)
                random.Random(5).shuffle(creds)
                urls = {"database": url, "broker": broker.url, "backbone": backbone.url}
                env = worker_env("fleet", True, urls, root)
                env["DRIVETRAIN_BACKBONE_NAMESPACE"] = args.namespace
                env["DRIVETRAIN_BACKBONE_REPLICAS"] = str(backbone.nodes)
                workers = Workers(f"soak{os.getpid()}", env, root).spawn(args.workers)
                consumer_log = (root / "consumer.log").open("wb")
                consumer = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "drivetrain",
                        "worker",
                        "consume",
                        "--client-id",
                        "soak-consumer",
                        "--status-interval-s",
                        str(report_s),
                    ],
                    env=env,
                    stdout=consumer_log,
                    stderr=consumer_log,
                )
                try:
                    for i, proc in enumerate(workers.ready()):
                        procs[f"ingest{i}"] = proc.pid
                    procs["consumer"] = consumer.pid
                    procs["mosquitto"] = broker.pid or 0
                    for i in range(backbone.nodes):
                        procs[f"nats{i}"] = backbone.pid(i) or 0
                    summary = soak(
                        minutes,
                        vehicles,
                        args,
                        creds,
                        urls,
                        database,
                        observer,
                        counts,
                        memory,
                        procs,
                        report_s,
                        sample_s,
                        root,
                        JetStreamTransport,
                        MqttTransport,
                        Crashes(args, backbone, workers, procs),
                    )
                finally:
                    workers.stop()
                    consumer.terminate()
                    consumer.wait(60)
                    consumer_log.close()
                    database.dispose()
        finally:
            backbone.stop()
            broker.kill()
    print(json.dumps(summary))
    return 0


def soak(
    minutes: float,
    vehicles: int,
    args: argparse.Namespace,
    creds: list[Any],
    urls: dict[str, str],
    database: Any,
    observer: Observer,
    counts: dict[str, int],
    memory: dict[str, list[tuple[float, float]]],
    procs: dict[str, int],
    report_s: float,
    sample_s: float,
    root: Path,
    jetstream: Any,
    mqtt: Any,
    crashes: Crashes,
) -> dict[str, Any]:
    """The run itself, once every process is up; returns the summary."""
    watcher = jetstream(urls["backbone"], client_id="soak-observer", namespace=args.namespace,
                        replicas=crashes.backbone.nodes)
    # durable (replicated) consumers: an ephemeral one would go with a killed node
    watcher.subscribe("$share/soak-observer/dt/platform/v1/telemetry", observer.telemetry)
    watcher.subscribe("$share/soak-observer/dt/platform/v1/twins", observer.twins)
    stop = threading.Event()
    started = time.monotonic()
    with mqtt(urls["broker"], client_id="soak-vehicles") as link:
        sender = threading.Thread(
            target=publish,
            args=(creds, link, observer, stop, args.every_s, args.samples, counts),
            daemon=True,
        )
        sender.start()
        note(
            f"{vehicles} vehicles, one message each {args.every_s:g} s, for {minutes:g} min, "
            f"through {args.workers} ingest workers and a consumer process; backbone: "
            f"{crashes.backbone.nodes} JetStream node(s), namespace {args.namespace!r}"
            + ("; with kills" if crashes.enabled else "")
        )
        next_sample = next_report = started
        while (elapsed := time.monotonic() - started) < minutes * 60:
            if time.monotonic() >= next_sample:
                for name, pid in procs.items():
                    if pid:  # 0: a killed node, down
                        memory[name].append((elapsed, rss_mb(pid)))
                next_sample += sample_s
            if time.monotonic() >= next_report and elapsed > 1:
                _progress(elapsed, counts, observer, memory, database)
                next_report += report_s
            crashes.tick(elapsed, minutes * 60, watcher)
            time.sleep(0.5)
        stop.set()
        sender.join(10)
        drain_until = time.monotonic() + 120
        while time.monotonic() < drain_until:
            with observer.lock:
                if len(observer.lake) >= len(observer.sent_at):
                    break
            time.sleep(0.5)
    time.sleep(5)  # the twin flush and the consumer catch up
    peak = max(_proc(pid)[1] for pid in procs.values() if pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counted, ledger = consumer_counts(database)
        if counted >= counts["sent"]:
            break
        time.sleep(1)
    watcher.close()
    lake, lake_duplicates = stored_batches(root / "data-fleet", urls["database"], args.samples)
    sent = set(observer.sent_at)
    twin_loss = twins_missing(database, creds, counts)
    cut = minutes * 60 / 5
    slopes = {
        name: round(slope_mb_per_h([
            s for s in samples
            if s[0] >= max(cut, crashes.restarted.get(name, -SETTLE_S) + SETTLE_S)
        ]), 1)
        for name, samples in memory.items()
    }
    by_minute: dict[str, list[float]] = {}
    for name, samples in memory.items():
        firsts: dict[int, float] = {}
        for t, mb in samples:
            firsts.setdefault(int(t // 60), round(mb, 1))
        by_minute[name] = [firsts[m] for m in sorted(firsts)]
    final = {name: round(samples[-1][1], 1) for name, samples in memory.items() if samples}
    _progress(time.monotonic() - started, counts, observer, memory, database)
    summary = {
        "benchmark": "soak",
        "minutes": minutes,
        "vehicles": vehicles,
        "every_s": args.every_s,
        "workers": args.workers,
        "jetstream_nodes": crashes.backbone.nodes,
        "namespace": args.namespace,
        "kills": crashes.events,
        "messages": counts["sent"],
        "stored_lake": len(sent & lake),
        "loss": max(len(sent - lake), counts["sent"] - counted),
        "consumer_counted": counted,
        "consumer_duplicates": max(0, counted - len(sent & lake)),
        "lake_duplicates": lake_duplicates,
        "announcement_redeliveries": observer.repeats,
        "consumer_ledger": ledger,
        "twin_loss": len(twin_loss),
        "twin_loss_examples": twin_loss[:3],
        "p50_lake_ms": percentile(observer.lake_ms, 0.5),
        "p99_lake_ms": percentile(observer.lake_ms, 0.99),
        "p50_twin_ms": percentile(observer.twin_ms, 0.5),
        "p99_twin_ms": percentile(observer.twin_ms, 0.99),
        "rss_slope_mb_per_h": max(v for k, v in slopes.items() if k in DRIVETRAIN),
        "rss_slope_mb_per_h_by_process": slopes,
        "rss_mb_final_by_process": final,
        "rss_mb_by_minute": by_minute,
        "peak_rss_mb": round(peak, 1),
    }
    return summary


def _progress(
    elapsed: float,
    counts: dict[str, int],
    observer: Observer,
    memory: dict[str, list[tuple[float, float]]],
    database: Any,
) -> None:
    counted, _ = consumer_counts(database)
    with observer.lock:
        lake_ms, twin_ms, in_lake = (
            list(observer.lake_ms),
            list(observer.twin_ms),
            len(observer.lake),
        )
    rss = " ".join(f"{n}={s[-1][1]:.0f}" for n, s in memory.items() if s)
    note(
        f"{elapsed / 60:5.1f} min: sent {counts['sent']:,}, in lake {in_lake:,}, counted by "
        f"consumer {counted:,}; lake p50/p99 {percentile(lake_ms, 0.5)}/"
        f"{percentile(lake_ms, 0.99)} ms, twin p50/p99 {percentile(twin_ms, 0.5)}/"
        f"{percentile(twin_ms, 0.99)} ms; RSS MB {rss}"
    )


if __name__ == "__main__":
    sys.exit(main())
