"""Benchmark: end-to-end telemetry ingestion on one core against a per-row Python baseline.

    python benchmarks/ingest.py [--quick] [--vehicles N] [--samples-per-batch S]
                                [--batches B] [--micro-batch M] [--repeats R]
    python benchmarks/ingest.py --broker mqtt://127.0.0.1:1883 [--quick] [--workers 2]

**Embedded (default).** Input: ``--vehicles`` registered vehicles (default 50) in one tenant,
consent to every privacy category, each sending batches of ``--samples-per-batch`` samples
(default 5,000: 50 VSS signals x 100 ticks at 10 Hz, values a random walk inside each
signal's range at the sensor's resolution, booleans, integers and floats) — ``--batches``
signed envelopes in all (default 400 = 2 M samples; ``--quick`` 200 = 1 M). What is timed is
``IngestPipeline.process`` over micro-batches of ``--micro-batch`` envelopes (default 200):
payload bytes in -> parse, registry lookup, Ed25519 verification, Arrow decode, validation
against the VSS catalog (type, range, timestamps), consent, pseudonyms -> ``Lake.append``
(Parquet on disk, fsync, index commit) -> latest values to the twins (SQLite) -> ledger and
counters committed. The process is pinned to one CPU and Arrow to one thread.

The baseline, measured in the same run on a sample of the same envelopes (``--baseline-batches``,
default 20), is the straightforward way: parse and verify each envelope the same way, then per
row ``Catalog.validate`` (the reference check), a timestamp check, a consent lookup and an
HMAC pseudonym per row, appended to Python lists, then ``pyarrow`` builds the table and
``pyarrow.parquet.write_table`` writes it.

Each repeat (``--repeats``, default 3) re-seals the envelopes with fresh batch ids into a
fresh lake directory, then runs ours and the baseline back to back; figures are medians and
``ratio`` is the median of the per-pair ratios. ``signals_per_cpu_s`` is samples per CPU
second of this process (less sensitive to busy neighbours than wall time).

**Broker (``--broker``).** Starts ``--workers`` (default 2) ``drivetrain worker ingest``
processes on a shared subscription, publishes every envelope from ``--vehicles`` simulated
vehicles with QoS 1, waits until the lake holds them, and reports the sustained
``signals_per_s`` (first publish to last sample stored) and ``loss`` (samples sent and not
stored; must be 0). No baseline in this mode.

Progress goes to stderr; the last line on stdout is one JSON object (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

err = Console(stderr=True)

SIGNALS = 50
TICK_NS = 100_000_000  # 10 Hz


#: The CPUs this process may use before the embedded measurement pins it to one.
_ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _pin_to_one_core() -> int:
    """Pin this process to one CPU and Arrow to one thread; returns the CPU."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    return cpu


def _signals() -> list[Any]:
    """50 numeric/boolean signals of the built-in catalog with finite ranges or none."""
    from drivetrain.core.vss import builtin_catalog

    chosen = [
        s
        for s in builtin_catalog()
        if s.datatype in ("float", "double", "uint8", "uint16", "int16", "boolean")
        and s.allowed is None
        and s.node_type == "sensor"
    ]
    rng = random.Random(5)
    rng.shuffle(chosen)
    return sorted(chosen[:SIGNALS], key=lambda s: s.path)


def _tables(
    signals: Sequence[Any], vehicles: int, batches: int, per_batch: int, start_ns: int
) -> list[tuple[int, pa.Table]]:
    """``(vehicle index, telemetry table)`` per batch: a random walk per signal, in range."""
    from drivetrain.core.wire import samples_table

    rng = np.random.default_rng(11)
    ticks = per_batch // len(signals)
    low = np.array([s.minimum if s.minimum is not None else -1000.0 for s in signals], float)
    high = np.array([s.maximum if s.maximum is not None else 1000.0 for s in signals], float)
    kind = [s.datatype for s in signals]
    low[[i for i, k in enumerate(kind) if k == "boolean"]] = 0.0
    high[[i for i, k in enumerate(kind) if k == "boolean"]] = 1.0
    for i, k in enumerate(kind):
        if k == "uint8":
            low[i], high[i] = max(low[i], 0.0), min(high[i], 255.0)
        elif k == "uint16":
            low[i], high[i] = max(low[i], 0.0), min(high[i], 65535.0)
        elif k == "int16":
            low[i], high[i] = max(low[i], -32768.0), min(high[i], 32767.0)
    for i, s in enumerate(signals):
        if (s.unit or "").lower() in ("celsius", "degrees celsius"):
            low[i], high[i] = max(low[i], -40.0), min(high[i], 120.0)
    integral = np.array([k in ("uint8", "uint16", "int16", "boolean") for k in kind])
    # Walk inside the inner 90 % of each range, so rounding to the resolution stays in range.
    margin = np.where(integral, 0.0, (high - low) * 0.05)
    low, high = low + margin, high - margin
    state = rng.uniform(low, high, size=(vehicles, len(signals)))
    out = []
    path_index = np.tile(np.arange(len(signals), dtype=np.int16), ticks)
    for b in range(batches):
        v = b % vehicles
        steps = rng.normal(0.0, (high - low) / 200.0, size=(ticks, len(signals)))
        walk = np.clip(state[v] + np.cumsum(steps, axis=0), low, high)
        state[v] = walk[-1]
        values = np.where(integral, np.round(walk), np.round(walk, 1)).reshape(-1)
        round_ = b // vehicles
        ts = start_ns + (round_ * ticks + np.repeat(np.arange(ticks), len(signals))) * TICK_NS
        out.append((v, samples_table([s.path for s in signals], path_index, ts, values)))
    return out


def _seal(tables: Sequence[tuple[int, pa.Table]], creds: Sequence[Any]) -> list[Any]:
    from drivetrain.cloud.ingest import RawMessage
    from drivetrain.core.transport import vehicle_topic
    from drivetrain.core.wire import seal_telemetry

    return [
        RawMessage(
            vehicle_topic(creds[v].vin, "telemetry"),
            seal_telemetry(creds[v].vin, table, key=creds[v].signing_key, seq=i),
        )
        for i, (v, table) in enumerate(tables)
    ]


def _fleet(database: Any, vehicles: int) -> list[Any]:
    from drivetrain.cloud.fleet import provision_vehicle
    from drivetrain.cloud.infra import create_tenant
    from drivetrain.cloud.privacy import set_consent
    from drivetrain.core.crypto import SigningKey
    from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES

    rng = random.Random(3)
    cloud = SigningKey.from_seed(b"b" * 32).verify_key
    creds = []
    with database.session() as session:
        create_tenant(session, "bench", actor="benchmark")
        for _ in range(vehicles):
            vehicle, cred = provision_vehicle(
                session,
                tenant="bench",
                model="compact-bev",
                region="EU",
                cloud_key=cloud,
                actor="benchmark",
                rng=rng,
            )
            set_consent(
                session,
                vin=vehicle.vin,
                tenant="bench",
                categories=PRIVACY_CATEGORIES,
                source="benchmark",
                actor="benchmark",
            )
            creds.append(cred)
    return creds


def _ours(pipeline: Any, messages: Sequence[Any], micro_batch: int) -> int:
    accepted = 0
    for start in range(0, len(messages), micro_batch):
        report = pipeline.process(messages[start : start + micro_batch])
        accepted += report.samples_accepted
    return accepted


def _baseline(
    messages: Sequence[Any],
    keys: dict[str, Any],
    tenant_key: bytes,
    consent: dict[str, frozenset[str]],
    out: Path,
    now_ns: int,
) -> int:
    """The straightforward way: per-row Python checks, lists, one pyarrow table and write."""
    from drivetrain.core.errors import BadInputError
    from drivetrain.core.vss import builtin_catalog
    from drivetrain.core.wire import decode_samples, parse

    catalog = builtin_catalog()
    earliest, latest = now_ns - 30 * 86_400 * 10**9, now_ns + 300 * 10**9
    columns: dict[str, list[Any]] = {
        k: [] for k in ("vehicle", "path", "ts", "value", "text", "category", "batch_id")
    }
    for message in messages:
        envelope = parse(message.payload)
        envelope.verify(keys[envelope.vehicle_id])
        table = decode_samples(envelope.body)
        table = table.set_column(1, "ts", table.column("ts").cast(pa.int64()))
        pseudonym_of = envelope.vehicle_id
        for row in table.to_pylist():
            path, value = row["path"], row["value"]
            try:
                spec = catalog.get(path)
                checked = value
                if spec.datatype == "boolean":
                    checked = {0.0: False, 1.0: True}.get(value, value)
                catalog.validate(path, checked)
            except BadInputError:
                continue
            ts = row["ts"]
            if not earliest <= ts <= latest:
                continue
            if spec.privacy_category not in consent[envelope.vehicle_id]:
                continue
            pseudonym = hmac.new(tenant_key, pseudonym_of.encode(), hashlib.sha256).hexdigest()[:24]
            columns["vehicle"].append(pseudonym)
            columns["path"].append(path)
            columns["ts"].append(ts)
            columns["value"].append(value)
            columns["text"].append(row["text"])
            columns["category"].append(spec.privacy_category)
            columns["batch_id"].append(envelope.message_id)
    table = pa.table(
        {
            "vehicle": pa.array(columns["vehicle"], pa.utf8()),
            "path": pa.array(columns["path"], pa.utf8()),
            "ts": pa.array(columns["ts"], pa.timestamp("ns", tz="UTC")),
            "value": pa.array(columns["value"], pa.float64()),
            "text": pa.array(columns["text"], pa.utf8()),
            "category": pa.array(columns["category"], pa.utf8()),
            "batch_id": pa.array(columns["batch_id"], pa.utf8()),
        }
    )
    pq.write_table(table, out)
    return table.num_rows


def _timed(run: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def embedded(args: argparse.Namespace) -> dict[str, Any]:
    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.ingest import IngestPipeline, TwinsReportedState
    from drivetrain.cloud.lake import Lake
    from drivetrain.cloud.privacy import pseudonymiser

    cpu = _pin_to_one_core()
    batches = args.batches or (200 if args.quick else 400)
    signals = _signals()
    per_batch = (args.samples_per_batch // len(signals)) * len(signals)
    samples = batches * per_batch
    with tempfile.TemporaryDirectory(prefix="ingest_bench_") as tmp:
        root = Path(tmp)
        database = Database(f"sqlite:///{root / 'state.db'}")
        database.upgrade()
        with err.status(f"provisioning {args.vehicles} vehicles"):
            creds = _fleet(database, args.vehicles)
        start_ns = time.time_ns() - 3600 * 10**9
        with err.status(f"generating {batches} batches of {per_batch:,} samples"):
            tables = _tables(signals, args.vehicles, batches, per_batch, start_ns)
        keys = {c.vin: c.signing_key.verify_key for c in creds}
        consent = {
            c.vin: frozenset({"location", "driving_behaviour", "cabin", "diagnostics", "technical"})
            for c in creds
        }
        with database.session() as session:
            tenant_key = pseudonymiser(session, "bench")._key
        err.print(
            f"{samples:,} samples in {batches} envelopes from {args.vehicles} vehicles, "
            f"micro-batches of {args.micro_batch}; pinned to CPU {cpu}; "
            f"{args.repeats} repeats"
        )
        ours_rates, ours_cpu_rates, base_rates, ratios, batch_ms = [], [], [], [], []
        payload_bytes = 0
        for repeat in range(args.repeats + 1):  # the first pair is an untimed warm-up
            with err.status(f"sealing envelopes (repeat {repeat})"):
                messages = _seal(tables, creds)
            payload_bytes = sum(len(m.payload) for m in messages)
            lake = Lake(root / f"lake{repeat}")
            pipeline = IngestPipeline(database, lake, TwinsReportedState())
            with err.status(f"ours: {samples:,} samples"):
                accepted, wall, cpu_s = _timed(
                    lambda p=pipeline, m=messages: _ours(p, m, args.micro_batch)
                )
            lake.close()
            if accepted != samples:
                raise SystemExit(f"ingestion accepted {accepted:,} of {samples:,} samples")
            sample = messages[: args.baseline_batches]
            with err.status(f"baseline: {len(sample) * per_batch:,} samples, per row"):
                out = root / f"baseline{repeat}.parquet"
                stored, base_wall, _ = _timed(
                    lambda s=sample, o=out: _baseline(
                        s, keys, tenant_key, consent, o, time.time_ns()
                    )
                )
            if stored != len(sample) * per_batch:
                raise SystemExit(f"baseline stored {stored:,} of {len(sample) * per_batch:,}")
            if repeat == 0:
                continue
            ours_rates.append(samples / wall)
            ours_cpu_rates.append(samples / cpu_s)
            base_rates.append(stored / base_wall)
            ratios.append((samples / wall) / (stored / base_wall))
            batch_ms.append(wall / -(-batches // args.micro_batch) * 1000)
            err.print(
                f"repeat {repeat}: ours {samples / wall:,.0f} samples/s "
                f"({samples / cpu_s:,.0f} per CPU s), baseline {stored / base_wall:,.0f}"
            )
        database.dispose()
    return {
        "mode": "embedded",
        "samples": samples,
        "envelopes": batches,
        "vehicles": args.vehicles,
        "samples_per_envelope": per_batch,
        "micro_batch_envelopes": args.micro_batch,
        "payload_bytes": payload_bytes,
        "repeats": args.repeats,
        "cores": len(os.sched_getaffinity(0)),  # the pinning in effect, read back
        "signals_per_s": round(statistics.median(ours_rates)),
        "signals_per_cpu_s": round(statistics.median(ours_cpu_rates)),
        "micro_batch_ms": round(statistics.median(batch_ms), 1),
        "baseline_signals_per_s": round(statistics.median(base_rates)),
        "baseline_sample_envelopes": args.baseline_batches,
        "ratio": round(statistics.median(ratios), 2),
    }


def realistic(args: argparse.Namespace) -> dict[str, Any]:
    """The realistic shape (benchmarks/ingest_realistic.py): both envelope sizes through the
    production worker, against the columnar baseline."""
    import ingest_realistic as shape

    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.privacy import pseudonymiser
    from drivetrain.core.settings import load_settings

    # The worker, the broker and the vehicles' publisher are separate processes here; each
    # gets the machine's CPUs (the worker's own CPU time is what is measured).
    os.sched_setaffinity(0, _ALL_CPUS)
    pa.set_cpu_count(len(_ALL_CPUS))
    vehicles = args.realistic_vehicles or (300 if args.quick else 1000)
    small = args.realistic_messages or (3000 if args.quick else 20_000)
    # 10 s envelopes: a fifth as many (two per vehicle in --quick), so the drained half is ~0.4
    # worker CPU-s rather than ~0.2: /proc counts CPU in 10 ms ticks
    counts = {"small": small, "large": max(1, small // 5)}
    private = shape.start_private_broker(Path(tempfile.mkdtemp(prefix="ingest_broker_")))
    url = private.url if private is not None else None
    transport = "mqtt" if url else "in-process"
    paths = shape.sim_paths()
    out: dict[str, Any] = {"transport": transport, "vehicles": vehicles,
                           "tenants": len(shape.TENANTS), "regions": len(shape.REGIONS)}  # fmt: skip
    for name, count in counts.items():
        with tempfile.TemporaryDirectory(prefix=f"ingest_real_{name}_") as tmp:
            root = Path(tmp)
            db_url = f"sqlite:///{root / 'state.db'}"
            database = Database(db_url)
            database.upgrade()
            with err.status(f"realistic {name}: provisioning {vehicles} vehicles"):
                fleet = shape.provision(database, vehicles)
                with database.session() as session:
                    tenant_keys = {t: pseudonymiser(session, t)._key for t in shape.TENANTS}
            start_ns = time.time_ns() - 3600 * 10**9
            with err.status(f"realistic {name}: sealing {count} envelopes"):
                opened = shape.sessions(fleet)
                opens = shape.session_opens(opened)
                messages, samples = shape.envelopes(fleet, paths, count, name, start_ns, opened)
            shape.write_cloud_key(root / "cloud-key.pem")
            # the embedded worker path on this run's own database, whatever profile the
            # environment names
            env = {**os.environ, "DRIVETRAIN_DATA_DIR": str(root / "data"),
                   "DRIVETRAIN_DATABASE_URL": db_url, "DRIVETRAIN_CONFIG": str(root / "none.toml"),
                   "DRIVETRAIN_PROFILE": "embedded",
                   "DRIVETRAIN_CLOUD_KEY_FILE": str(root / "cloud-key.pem")}  # fmt: skip
            # half published while the worker consumes, half waiting for it (module docstring);
            # the vehicles' session_opens go first, with the live half
            live_part, backlog_part = opens + messages[: count // 2], messages[count // 2 :]
            with err.status(f"realistic {name}: {count} envelopes through the worker ({transport})"):
                stages = root / "stages.json" if args.worker_stages and url else None
                if url is not None:
                    live, backlog = shape.run_worker_process(
                        url, env, live_part, backlog_part, root / "worker.log", stages
                    )
                else:
                    settings = load_settings(data_dir=root / "data", database_url=db_url,
                                             cloud_key_file=root / "cloud-key.pem")  # fmt: skip
                    live = backlog = shape.run_in_process(settings, database, opens + messages)
            tick = 1 / os.sysconf("SC_CLK_TCK")  # /proc counts in clock ticks
            live_cpu, cpu = max(live.cpu_s, tick), max(backlog.cpu_s, tick)
            live_samples = samples if backlog is live else sum(
                _rows_in(m) for m in messages[: count // 2])
            backlog_samples = samples if backlog is live else samples - live_samples
            sample = messages[: max(1, count // 4)]
            with err.status(f"realistic {name}: columnar baseline on {len(sample)} envelopes"):
                sample_samples = sum(_rows_in(m) for m in sample)
                session_keys = shape.baseline_session_keys(opens, fleet)
                _, base_cpu = shape.columnar_baseline(sample, fleet, tenant_keys, root / "baseline",
                                                      session_keys)  # fmt: skip
            database.dispose()
            timed = _stage_costs(stages, count) if stages is not None else None
        figures = {
            "messages": count,
            "sessions": len(opens),
            "samples": samples,
            "samples_per_message": round(samples / count),
            "payload_bytes_per_message": round(sum(len(m.payload) for m in messages) / count),
            # the worker with work waiting (at capacity): its micro-batches are full
            "worker_cpu_s": round(cpu, 2),
            "wall_s": round(backlog.wall_s, 2),
            "messages_per_micro_batch": _per_micro_batch(backlog),
            "signals_per_cpu_s": round(backlog_samples / cpu),
            "messages_per_cpu_s": round(backlog.messages / cpu),
            "us_per_message": round(cpu / backlog.messages * 1e6),
            # the worker while the publisher sends: micro-batches hold what arrived in 200 ms
            "live": {
                "messages": live.messages,
                "worker_cpu_s": round(live_cpu, 2),
                "wall_s": round(live.wall_s, 2),
                "messages_per_micro_batch": _per_micro_batch(live),
                "signals_per_cpu_s": round(live_samples / live_cpu),
                "messages_per_cpu_s": round(live.messages / live_cpu),
            },
            "baseline_signals_per_cpu_s": round(sample_samples / base_cpu),
            "baseline_messages_per_cpu_s": round(len(sample) / base_cpu),
        }
        if timed is not None:  # both phases (the timers' own cost included)
            figures["worker_stages_us_per_message"] = timed
        err.print(f"realistic {name}: {figures}")
        out[name] = figures
    if private is not None:
        private.kill()
    out["signals_per_cpu_s"] = out["large"]["signals_per_cpu_s"]
    out["messages_per_cpu_s"] = out["small"]["messages_per_cpu_s"]
    out["baseline_signals_per_cpu_s"] = out["large"]["baseline_signals_per_cpu_s"]
    out["baseline_messages_per_cpu_s"] = out["small"]["baseline_messages_per_cpu_s"]
    out["ratio"] = round(out["signals_per_cpu_s"] / out["baseline_signals_per_cpu_s"], 2)
    return out


def _stage_costs(written: Path, messages: int) -> dict[str, float]:
    """The worker's CPU time per message, stage by stage and thread by thread, as
    ``_worker_stages.py`` wrote it (``--worker-stages``)."""
    found = json.loads(written.read_text())
    costs = {
        stage: round(cpu_s / messages * 1e6, 1) for stage, (cpu_s, _) in found["stages"].items()
    }
    for thread, cpu_s in found["threads"].items():
        name = re.sub(r"-bench[0-9a-f]+-w$", "", thread)  # the client id the benchmark chose
        costs[f"thread {name}"] = round(cpu_s / messages * 1e6, 1)
    return costs


def _per_micro_batch(run: Any) -> int | None:
    """Messages per micro-batch of a worker run (None: the worker did not say)."""
    return round(run.messages / run.micro_batches) if run.micro_batches else None


def _rows_in(message: Any) -> int:
    from drivetrain.core.wire import decode_samples, parse

    return int(decode_samples(parse(message.payload).body).num_rows)


def broker(args: argparse.Namespace) -> dict[str, Any]:
    from drivetrain.cloud.infra import Database
    from drivetrain.cloud.ingest import ingest_stats
    from drivetrain.core.transport.mqtt import MqttTransport

    batches = args.batches or (200 if args.quick else 1000)
    signals = _signals()
    per_batch = (args.samples_per_batch // len(signals)) * len(signals)
    samples = batches * per_batch
    with tempfile.TemporaryDirectory(prefix="ingest_broker_bench_") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root / 'state.db'}"
        database = Database(url)
        database.upgrade()
        creds = _fleet(database, args.vehicles)
        tables = _tables(signals, args.vehicles, batches, per_batch, time.time_ns() - 600 * 10**9)
        messages = _seal(tables, creds)
        env = {
            **os.environ,
            "DRIVETRAIN_DATA_DIR": str(root / "data"),
            "DRIVETRAIN_DATABASE_URL": url,
            "DRIVETRAIN_CONFIG": str(root / "none.toml"),
            "DRIVETRAIN_PROFILE": "embedded",  # whatever profile the environment names
        }
        group = f"bench{os.getpid()}"
        workers = []
        for i in range(args.workers):
            log = (root / f"worker{i}.log").open("wb")
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "drivetrain",
                        "worker",
                        "ingest",
                        "--broker",
                        args.broker,
                        "--group",
                        group,
                        "--client-id",
                        f"{group}-w{i}",
                        "--session-expiry-s",
                        "60",
                    ],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                "consuming" in (root / f"worker{i}.log").read_text() for i in range(args.workers)
            ):
                time.sleep(0.1)
            err.print(
                f"{args.workers} workers up; publishing {samples:,} samples in {batches} "
                f"envelopes from {args.vehicles} vehicles"
            )
            started = time.perf_counter()
            with MqttTransport(args.broker, client_id=f"{group}-vehicles") as publisher:
                tickets = [publisher.publish_async(m.topic, m.payload, qos=1) for m in messages]
                for ticket in tickets:
                    ticket.wait(120)
            stored = 0
            deadline = time.monotonic() + 600
            with err.status("waiting for the workers"):
                while stored < samples and time.monotonic() < deadline:
                    time.sleep(0.2)
                    with database.session() as session:
                        stats = ingest_stats(session, tenant="bench")
                    stored = sum(o.samples for o in stats.totals if o.outcome == "accepted")
            elapsed = time.perf_counter() - started
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(60)
            database.dispose()
    return {
        "mode": "broker",
        "samples": samples,
        "envelopes": batches,
        "vehicles": args.vehicles,
        "workers": args.workers,
        "signals_per_s": round(stored / elapsed),
        "stored": stored,
        "loss": samples - stored,
        "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 M samples; under a minute")
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--samples-per-batch", type=int, default=5000)
    parser.add_argument("--batches", type=int, help="envelopes (default 400; --quick 200)")
    parser.add_argument("--micro-batch", type=int, default=200, help="envelopes per process()")
    parser.add_argument("--baseline-batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--broker", help="mqtt://host:port: measure N workers behind a broker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--realistic-vehicles", type=int, help="vehicles of the realistic shape (300; full 1000)"
    )
    parser.add_argument(
        "--realistic-messages",
        type=int,
        help="100-sample envelopes of the realistic shape (3,000; full 20,000); a fifth as "
        "many 10 s envelopes",
    )
    parser.add_argument("--no-realistic", action="store_true", help="skip the realistic shape")
    parser.add_argument(
        "--realistic-only", action="store_true", help="only the realistic shape"
    )
    parser.add_argument(
        "--worker-stages",
        action="store_true",
        help="time each stage of the realistic shape's worker process (CPU microseconds per "
        "message, in 'worker_stages_us_per_message'; the timers add about 1 us a call)",
    )
    args = parser.parse_args(argv)
    if args.baseline_batches < 1 or args.repeats < 1 or args.micro_batch < 1:
        parser.error("--baseline-batches, --repeats and --micro-batch must be >= 1")
    if args.broker and not args.realistic_only:
        figures = broker(args)
    elif args.realistic_only:
        figures = {"mode": "realistic"}
    else:
        figures = embedded(args)
    if not args.no_realistic:
        figures["realistic"] = realistic(args)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
