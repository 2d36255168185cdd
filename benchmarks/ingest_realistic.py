"""The realistic shape of the ingest benchmark (imported by benchmarks/ingest.py).

What the simulated agents really send, through the path users run:

- **signals**: the VSS paths the simulated vehicles' CAN maps produce (151 over both models);
- **two envelope shapes**: a 10 s batch (every mapped signal at 1 Hz for 10 s, about 1,400
  samples) and a 1 Hz batch of 100 samples (a car uploading every second);
- **a fleet** in three tenants and two regions (EU, US); 60 % of the vehicles keep the
  default consent (technical and diagnostics only), the others consent to every category;
- **a mix of bad input**: about 0.5 % of samples out of range, an unknown path in 2 % of the
  messages, 0.5 % of messages signed with another vehicle's key, 0.5 % from unregistered VINs;
- **vehicle sessions**, as the agents use them: each vehicle opens one with a signed
  ``session_open`` (sent at the start of the live phase, so the headline backlog is a
  session's steady state: one open per 1,024 envelopes), then MACs its telemetry under it
  (the forged and unregistered senders sign, having no session);
- **the production worker**: one ``drivetrain worker ingest`` process with its default flush
  policy (2,000 messages or 200 ms), consuming from the broker; its CPU time is read from
  ``/proc/<pid>/stat``. Half the messages are published while it consumes (``live``: its
  micro-batches hold what arrived in 200 ms, so the publisher's rate decides how full they
  are); the other half is published while it is paused and timed as it drains them
  (the headline figures: a worker with work waiting, as one at capacity is, takes full
  micro-batches — as full as the baseline's, which takes the worker's default size). Without a
  reachable broker, the same ``IngestWorker`` runs in this process on the in-process bus
  (``transport`` "in-process") and this process's CPU time is counted.

The baseline is a competent columnar implementation (:func:`columnar_baseline`): the same
parse and MAC (or signature) check per message — its session keys derived from the same
session_opens before it is timed, as ours are in the live phase — then per micro-batch pyarrow compute for validation,
consent and pseudonyms, a Parquet file per (region, tenant) with fsync, and an SQLite index of
batch ids, latest values and dead letters, committed — the same durable work, no per-row
Python.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from drivetrain.commands.worker import DEFAULT_BATCH_MESSAGES

TENANTS = ("fleet-a", "fleet-b", "fleet-c")
REGIONS = ("EU", "US")
DEFAULT_CONSENT = ("technical", "diagnostics")
MICRO_BATCH = DEFAULT_BATCH_MESSAGES  # the worker's default --max-batch-messages
#: The platform key the vehicles are provisioned with and the worker opens sessions with.
CLOUD_SEED = b"c" * 32


@dataclass(frozen=True)
class Vehicle:
    vin: str
    tenant: str
    region: str
    key: Any  # SigningKey
    consent: tuple[str, ...]


def sim_paths() -> list[str]:
    """The VSS paths the simulated vehicles' CAN maps produce."""
    from drivetrain.sim.can.vehicles import load_vehicle_can

    paths: set[str] = set()
    for model in ("compact_bev", "suv_bev"):
        paths |= set(load_vehicle_can(model).signal_map.paths)
    return sorted(paths)


def provision(database: Any, count: int, seed: int = 3) -> list[Vehicle]:
    """``count`` vehicles over the tenants and regions, 60 % with the default consent."""
    import random

    from drivetrain.cloud.fleet import provision_vehicle
    from drivetrain.cloud.infra import create_tenant
    from drivetrain.cloud.privacy import set_consent
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

    rng = random.Random(seed)
    cloud = SigningKey.from_seed(CLOUD_SEED).verify_key
    vehicles = []
    with database.session() as session:
        for tenant in TENANTS:
            create_tenant(session, tenant, actor="benchmark")
        for i in range(count):
            tenant, region = TENANTS[i % len(TENANTS)], REGIONS[(i // 3) % len(REGIONS)]
            vehicle, cred = provision_vehicle(
                session, tenant=tenant, model="compact-bev", region=region, cloud_key=cloud,
                actor="benchmark", rng=rng,
            )  # fmt: skip
            consent = DEFAULT_CONSENT if i % 5 < 3 else tuple(PRIVACY_CATEGORIES)
            if consent != DEFAULT_CONSENT:
                set_consent(session, vin=vehicle.vin, tenant=tenant, categories=consent,
                            source="benchmark", actor="benchmark")  # fmt: skip
            vehicles.append(Vehicle(vehicle.vin, tenant, region, cred.signing_key, consent))
    return vehicles


def write_cloud_key(path: Path) -> None:
    """The platform key at ``path`` (0600), for the worker (``DRIVETRAIN_CLOUD_KEY_FILE``)."""
    from drivetrain.core.crypto import SigningKey

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(SigningKey.from_seed(CLOUD_SEED).to_pem())


def sessions(vehicles: Sequence[Vehicle]) -> dict[str, Any]:
    """A session per vehicle, opened with the platform key (``VehicleSession`` by VIN)."""
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.wire import VehicleSession

    cloud = SigningKey.from_seed(CLOUD_SEED).verify_key
    return {v.vin: VehicleSession(v.vin, v.key, cloud, seq=0) for v in vehicles}


def session_opens(opened: dict[str, Any]) -> list[Any]:
    """The session_open messages of ``opened`` (from :func:`sessions`)."""
    from drivetrain.cloud.ingest import RawMessage
    from drivetrain.core.transport import vehicle_topic

    return [RawMessage(vehicle_topic(vin, "telemetry"), s.open_envelope) for vin, s in opened.items()]


def envelopes(
    vehicles: Sequence[Vehicle], paths: Sequence[str], messages: int, shape: str, start_ns: int,
    opened: dict[str, Any],
) -> tuple[list[Any], int]:
    """``messages`` envelopes of ``shape`` ("small": 100 samples at 1 Hz; "large": every path
    at 1 Hz for 10 s), MAC'd under the vehicles' sessions ``opened`` (the forged and
    unregistered ones signed); returns them and the samples they hold."""
    from drivetrain.cloud.ingest import RawMessage
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.transport import vehicle_topic
    from drivetrain.core.vss import builtin_catalog
    from drivetrain.core.wire import samples_table, seal_telemetry

    catalog = builtin_catalog()
    specs = [catalog.get(p) for p in paths]
    # unsigned signals without a minimum start at 0, as the vehicles' decoders give them (a
    # negative one is refused as wrong_type: bad input beyond the mix below)
    low = np.array([s.minimum if s.minimum is not None else
                    0.0 if s.datatype.startswith("uint") else -100.0 for s in specs], float)  # fmt: skip
    high = np.array([s.maximum if s.maximum is not None else 100.0 for s in specs], float)
    integral = np.array([s.datatype not in ("float", "double") for s in specs])
    boolean = np.array([s.datatype == "boolean" for s in specs])
    low[boolean], high[boolean] = 0.0, 1.0
    high = np.minimum(high, low + 1000.0)
    rng = np.random.default_rng(17)
    stranger = SigningKey.from_seed(b"s" * 32)
    out, samples = [], 0
    ticks, per_tick = (1, 100) if shape == "small" else (10, len(paths))
    for m in range(messages):
        vehicle = vehicles[m % len(vehicles)]
        second = m // len(vehicles) * ticks
        chosen = rng.choice(len(paths), per_tick, replace=False) if per_tick < len(paths) else (
            np.arange(len(paths)))  # fmt: skip
        index = np.tile(np.sort(chosen), ticks)
        ts = start_ns + (second + np.repeat(np.arange(ticks), per_tick)) * 1_000_000_000
        values = rng.uniform(low[index], high[index])
        values = np.where(integral[index], np.floor(values), np.round(values, 2))
        bad = rng.random(len(index)) < 0.005  # out of range
        values[bad] = high[index][bad] + 1.0
        names = [paths[i] for i in range(len(paths))]
        if rng.random() < 0.02:  # an unknown path
            names = [*names, "Vehicle.Bench.Unknown"]
            index = np.append(index, len(names) - 1)
            ts = np.append(ts, ts[-1])
            values = np.append(values, 1.0)
        table = samples_table(names, index, ts, values)
        vin, key = vehicle.vin, opened[vehicle.vin]
        roll = rng.random()
        if roll < 0.005:
            key = stranger  # bad_signature
        elif roll < 0.01:
            vin, key = "DTVBENCH" + f"{m:09d}", vehicle.key  # unknown_vehicle
        out.append(RawMessage(vehicle_topic(vin, "telemetry"), seal_telemetry(vin, table, key=key, seq=m)))
        samples += len(index)
    return out, samples


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid``, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_private_broker(directory: Path) -> Any:
    """A Mosquitto of this run alone, with no cap on queued messages (the default of 1,000
    drops QoS 1 messages a busy subscriber has not taken yet); None without mosquitto."""
    from drivetrain.core.errors import ConfigurationError, TransportError
    from drivetrain.core.transport.testing import PrivateBroker

    try:
        broker = PrivateBroker(directory, extra_config="max_queued_messages 0\n")
        broker.start()
    except (ConfigurationError, TransportError):
        return None
    return broker


@dataclass(frozen=True)
class WorkerRun:
    """CPU and wall seconds of the worker over one phase, and the micro-batches it took."""

    messages: int
    cpu_s: float
    wall_s: float
    micro_batches: int


def run_worker_process(
    broker: str,
    env: dict[str, str],
    live: Sequence[Any],
    backlog: Sequence[Any],
    log: Path,
    stages_to: Path | None = None,
) -> tuple[WorkerRun, WorkerRun]:
    """Feed a fresh ``drivetrain worker ingest`` with its default flush policy in two phases;
    returns (live, backlog) figures.

    - **live**: ``live`` is published while the worker consumes (its micro-batches hold what
      arrived in 200 ms: the publisher's rate decides how full they are);
    - **backlog**: the worker is paused (SIGSTOP) while ``backlog`` is published, then resumed
      and timed until it has acknowledged all of it: a worker with work waiting, as one at
      capacity is, so its micro-batches are full. CPU is read while it is paused, so the
      publishing costs it nothing.

    ``stages_to``: run the worker under ``_worker_stages.py``, which writes the CPU time of
    each stage of a message's way in (both phases together) there as JSON when it exits.
    """
    from drivetrain.core.transport.mqtt import MqttTransport

    group = f"bench{uuid.uuid4().hex[:8]}"
    with log.open("wb") as out:
        launch = [sys.executable, "-m", "drivetrain"]
        if stages_to is not None:
            timer = Path(__file__).with_name("_worker_stages.py")
            launch = [sys.executable, str(timer), str(stages_to)]
        worker = subprocess.Popen(
            [*launch, "worker", "ingest", "--broker", broker,
             "--group", group, "--client-id", f"{group}-w", "--session-expiry-s", "60",
             "--status-interval-s", "0.2"],
            env=env, stdout=out, stderr=out,
        )  # fmt: skip

    def acked() -> tuple[int, int, int]:
        """(messages acked, micro-batches, latest values waiting for the twins) from the worker's
        last status line (a worker that does not say a figure counts 0 of it)."""
        lines = re.findall(r"^.*messages acked.*$", log.read_text(), flags=re.MULTILINE)
        if not lines:
            return 0, 0, 0
        last = lines[-1]

        def figure(pattern: str) -> int:
            found = re.search(pattern, last)
            return int(found.group(1).replace(",", "")) if found else 0

        return (figure(r"([\d,]+) messages acked"), figure(r"in ([\d,]+) micro-batches"),
                figure(r"([\d,]+) latest values waiting for the twins"))  # fmt: skip

    def wait_acked(count: int) -> tuple[int, int]:
        # done when every message is acknowledged AND the twins hold their latest values: the
        # worker writes those every 2 s or when idle, and that work is part of ingesting them
        done, deadline = acked(), time.monotonic() + 600
        while (done[0] < count or done[2]) and time.monotonic() < deadline:
            time.sleep(0.05)
            done = acked()
        if done[0] < count:
            raise SystemExit(f"worker acknowledged {done[0]} of {count} messages")
        return done[0], done[1]

    try:
        deadline = time.monotonic() + 120
        while "consuming" not in log.read_text() and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.5)
        with MqttTransport(broker, client_id=f"{group}-vehicles") as publisher:
            cpu_before, started = proc_cpu_s(worker.pid), time.perf_counter()
            tickets = [publisher.publish_async(m.topic, m.payload, qos=1) for m in live]
            for ticket in tickets:
                ticket.wait(300)
            done = wait_acked(len(live))
            first = WorkerRun(len(live), proc_cpu_s(worker.pid) - cpu_before,
                              time.perf_counter() - started, done[1])  # fmt: skip
            time.sleep(0.5)  # the status line of the last micro-batch is out
            batches_before = acked()[1]
            worker.send_signal(signal.SIGSTOP)
            try:
                tickets = [publisher.publish_async(m.topic, m.payload, qos=1) for m in backlog]
                for ticket in tickets:
                    ticket.wait(300)
                cpu_before = proc_cpu_s(worker.pid)
            finally:
                worker.send_signal(signal.SIGCONT)
            started = time.perf_counter()
            done = wait_acked(len(live) + len(backlog))
            second = WorkerRun(len(backlog), proc_cpu_s(worker.pid) - cpu_before,
                               time.perf_counter() - started, done[1] - batches_before)  # fmt: skip
    finally:
        worker.terminate()
        worker.wait(60)
    return first, second


def run_in_process(settings: Any, database: Any, messages: Sequence[Any]) -> WorkerRun:
    """The same worker on the in-process bus, in this process (this process's CPU time)."""
    from drivetrain.cloud.ingest import IngestPipeline, IngestWorker, TwinsReportedState
    from drivetrain.cloud.lake import Lake
    from drivetrain.core.transport import InProcessTransport

    lake = Lake.open(settings)
    pipeline = IngestPipeline.from_settings(settings, database, lake, TwinsReportedState())
    with InProcessTransport() as bus:
        worker = IngestWorker(bus, pipeline).start()
        cpu, wall = time.process_time(), time.perf_counter()
        for message in messages:
            bus.publish(message.topic, message.payload, qos=1)
        bus.drain(600)
        worker.wait_idle(600)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        batches = worker.stats().micro_batches
        worker.stop()
    lake.close()
    return WorkerRun(len(messages), cpu, wall, batches)


# --- the baseline: columnar, same durable work ----------------------------------------------------
def baseline_session_keys(opens: Sequence[Any], vehicles: Sequence[Vehicle]) -> dict[str, Any]:
    """What the baseline knows of the sessions ``opens`` open: (VIN, MAC key) by session id,
    each session_open's signature checked and its key derived as the platform does."""
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.wire import SessionOpen, parse, platform_session_key

    platform = SigningKey.from_seed(CLOUD_SEED)
    keys = {v.vin: v.key.verify_key for v in vehicles}
    known: dict[str, Any] = {}
    for message in opens:
        envelope = parse(message.payload).verify(keys[parse(message.payload).vehicle_id])
        opened = SessionOpen.from_dict(envelope.json_body())
        known[opened.session_id] = (envelope.vehicle_id,
                                    platform_session_key(platform, opened, envelope.vehicle_id))  # fmt: skip
    return known


def columnar_baseline(
    messages: Sequence[Any], vehicles: Sequence[Vehicle], tenant_keys: dict[str, bytes], root: Path,
    session_keys: dict[str, Any],
) -> tuple[int, float]:
    """Ingest ``messages`` the competent columnar way (``session_keys`` from
    :func:`baseline_session_keys`); returns (signals stored, CPU s)."""
    from drivetrain.core.errors import DrivetrainError
    from drivetrain.core.vss import builtin_catalog
    from drivetrain.core.wire import decode_samples, parse

    catalog = builtin_catalog()
    specs = list(catalog)
    catalog_paths = pa.array([s.path for s in specs], pa.utf8())
    minimum = pa.array([s.minimum if s.minimum is not None else -np.inf for s in specs], pa.float64())
    maximum = pa.array([s.maximum if s.maximum is not None else np.inf for s in specs], pa.float64())
    category = pa.array([s.privacy_category for s in specs], pa.utf8())
    registry = {v.vin: v for v in vehicles}
    keys = {v.vin: v.key.verify_key for v in vehicles}
    root.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(root / "index.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(
        "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, vin TEXT);"
        "CREATE TABLE IF NOT EXISTS latest (vin TEXT, path TEXT, ts INTEGER, value REAL,"
        " PRIMARY KEY (vin, path));"
        "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, vin TEXT, reason TEXT, payload BLOB);"
    )
    now = time.time_ns()
    earliest, latest = now - 30 * 86_400 * 10**9, now + 300 * 10**9
    stored, cpu = 0, time.process_time()
    for start in range(0, len(messages), MICRO_BATCH):
        tables, dead, batch_ids = [], [], []
        for message in messages[start : start + MICRO_BATCH]:
            try:
                envelope = parse(message.payload)
                vehicle = registry.get(envelope.vehicle_id)
                if vehicle is None:
                    raise DrivetrainError("unknown vehicle")
                if envelope.session_id is None:
                    envelope.verify(keys[vehicle.vin])
                else:
                    owner, mac_key = session_keys.get(envelope.session_id, ("", b""))
                    if owner != vehicle.vin:
                        raise DrivetrainError("unknown session")
                    envelope.verify_mac(mac_key)
                table = decode_samples(envelope.body)
            except DrivetrainError as e:
                dead.append(("", str(e), message.payload))
                continue
            path = table.column("path").combine_chunks().cast(pa.utf8())
            tables.append(pa.table({
                "vin": pa.repeat(vehicle.vin, table.num_rows), "path": path,
                "ts": table.column("ts").cast(pa.int64()), "value": table.column("value"),
                "batch_id": pa.repeat(envelope.message_id, table.num_rows),
            }))  # fmt: skip
            batch_ids.append((envelope.message_id, vehicle.vin))
        if tables:
            rows = pa.concat_tables(tables)
            spec = pc.index_in(rows.column("path"), value_set=catalog_paths)
            value = rows.column("value")
            ts = rows.column("ts")
            valid = pc.and_(
                pc.and_(pc.is_valid(spec), pc.and_(
                    pc.greater_equal(value, pc.take(minimum, spec)),
                    pc.less_equal(value, pc.take(maximum, spec)))),
                pc.and_(pc.greater_equal(ts, earliest), pc.less_equal(ts, latest)),
            )  # fmt: skip
            valid = pc.fill_null(valid, False)
            rows = rows.append_column("category", pc.take(category, spec))
            vins = rows.column("vin").unique().to_pylist()
            consent_ok = pc.fill_null(pc.is_in(
                pc.binary_join_element_wise(rows.column("vin"), rows.column("category"), ":"),
                value_set=pa.array([f"{v}:{c}" for v in vins for c in registry[v].consent]),
            ), False)  # fmt: skip
            refused = rows.filter(pc.invert(valid))
            accepted = rows.filter(pc.and_(valid, consent_ok))
            pseudonym = {
                v: hmac.new(tenant_keys[registry[v].tenant], v.encode(), hashlib.sha256).hexdigest()[:24]
                for v in vins
            }  # fmt: skip
            owner = {v: (registry[v].region, registry[v].tenant) for v in vins}
            group = pc.take(pa.array([f"{r}/{t}" for r, t in (owner[v] for v in vins)]),
                            pc.index_in(accepted.column("vin"), value_set=pa.array(vins)))  # fmt: skip
            for key in group.unique().to_pylist():
                part = accepted.filter(pc.equal(group, key))
                part = part.set_column(0, "vehicle", pc.take(
                    pa.array([pseudonym[v] for v in vins]),
                    pc.index_in(part.column("vin"), value_set=pa.array(vins))))  # fmt: skip
                out = root / key / f"{uuid.uuid4().hex}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, out)
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                stored += part.num_rows
            newest = accepted.group_by(["vin", "path"]).aggregate([("ts", "max")])
            joined = accepted.join(newest, ["vin", "path"])
            latest_rows = joined.filter(pc.equal(joined.column("ts"), joined.column("ts_max")))
            db.executemany(
                "INSERT INTO latest VALUES (?, ?, ?, ?) ON CONFLICT (vin, path) DO UPDATE SET "
                "ts = excluded.ts, value = excluded.value WHERE excluded.ts > latest.ts",
                zip(*(latest_rows.column(c).to_pylist() for c in ("vin", "path", "ts", "value"))),
            )
            if refused.num_rows:
                dead.append(("", "samples", pq_bytes(refused)))
        db.executemany("INSERT OR IGNORE INTO batches VALUES (?, ?)", batch_ids)
        db.executemany("INSERT INTO dead (vin, reason, payload) VALUES (?, ?, ?)", dead)
        db.commit()
    cpu = time.process_time() - cpu
    db.close()
    return stored, cpu


def pq_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())
