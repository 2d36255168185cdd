"""The realistic run of ``benchmarks/fleet_sim.py``: a fleet through ``drivetrain sim fleet``'s
path, with an ingest worker of its own keeping up.

What ``drivetrain sim fleet`` does, step by step, with a broker: the fleet is provisioned in
the state database (``provision_fleet``: a key pair per vehicle, privacy defaults), the
runner's agents publish signed telemetry through one MQTT connection, and the data lands in
the lake and the twins through an ingest worker. Here the worker is ``drivetrain worker
ingest`` in its own process, behind a private Mosquitto started for the run (or the broker
given), each process pinned to its own CPU: the simulator on one, the worker on another.

Figures (CPU-seconds from ``/proc``, so a busy neighbour does not change them much):
``sim_cpu_s_per_simulated_s`` (the simulator process: world, CAN, agents, MQTT client) and
its inverse ``speedup_vs_real_time``, the real-time factor of the simulator on one core;
``ingest_cpu_s_per_simulated_s`` (the worker process, from when it is ready until it has
stored everything, over every simulated second sent); ``broker_cpu_s_per_simulated_s``.
The worker keeps up when it needs less than one CPU-second per simulated second and has
stored every sample the agents sent (``samples_ingested`` == ``samples_sent``) within
``DRAIN_TIMEOUT_S`` of the run's end.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from drivetrain.cloud.infra import Database, ensure_embedded_bootstrap
from drivetrain.cloud.ingest import MESSAGE_REASONS, OUTCOMES, ingest_stats
from drivetrain.core.settings import load_settings

#: Longest wait for the worker to store what the fleet sent once the run is over, seconds.
DRAIN_TIMEOUT_S = 120.0
TENANT = "default"
#: Outcomes that count samples (the others count whole messages).
SAMPLE_OUTCOMES = tuple(o for o in OUTCOMES if o != "duplicate" and o not in MESSAGE_REASONS)

err = Console(stderr=True)


def _cpu_s(pid: int | str) -> float:
    """User + system CPU seconds of process ``pid`` (``"self"`` for this one) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pin_process(pid: int, core: int) -> None:
    """Pin every thread of ``pid`` to ``core`` (threads started later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(task), {core})
        except OSError:  # a thread that has just ended
            continue


@dataclass
class Cores:
    """Where each process runs: the simulator, the ingest worker (the same core when there is
    only one)."""

    sim: int
    ingest: int

    @classmethod
    def pick(cls) -> Cores:
        allowed = sorted(os.sched_getaffinity(0))
        return cls(allowed[0], allowed[1] if len(allowed) > 1 else allowed[0])


@contextmanager
def _broker(url: str | None, directory: Path) -> Iterator[tuple[str, int | None]]:
    """(broker URL, broker pid or None): the one given, else a private Mosquitto."""
    if url:
        yield url, None
        return
    from drivetrain.core.transport.testing import PrivateBroker

    broker = PrivateBroker(directory / "broker")
    broker.start()
    try:
        yield broker.url, broker.pid
    finally:
        broker.stop()


def _ingested_samples(database: Database) -> int:
    with database.session() as session:
        totals = ingest_stats(session, tenant=None, vehicles_limit=1).totals
    return sum(t.samples for t in totals if t.outcome in SAMPLE_OUTCOMES)


def _worker(data_dir: Path, broker: str, core: int, log: Path) -> subprocess.Popen[bytes]:
    """``drivetrain worker ingest`` on ``core``, its own shared-subscription group."""
    env = dict(os.environ)
    env.update({
        "DRIVETRAIN_DATA_DIR": str(data_dir), "DRIVETRAIN_DEPLOYMENT": "embedded",
        "DRIVETRAIN_PROFILE": "embedded",
        "DRIVETRAIN_CONFIG": str(data_dir / "none.toml"), "DRIVETRAIN_BROKER_URL": broker,
    })  # fmt: skip
    env.pop("DRIVETRAIN_DATABASE_URL", None)
    command = [sys.executable, "-m", "drivetrain", "worker", "ingest", "--group",
               f"bench{os.getpid()}", "--client-id", f"bench-ingest-{os.getpid()}",
               "--status-interval-s", "5"]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),  # noqa: PLW1509 - no threads yet
        )  # fmt: skip


def _wait_ready(worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 120.0) -> None:
    """Until the worker says it consumes (its subscription is in place: messages published
    before it would reach no one)."""
    deadline = time.monotonic() + timeout_s
    while b"consuming" not in log.read_bytes():
        if worker.poll() is not None or time.monotonic() > deadline:
            tail = log.read_bytes()[-2000:].decode(errors="replace")
            raise RuntimeError(f"the ingest worker did not start; its log ends:\n{tail}")
        time.sleep(0.2)


def run(
    vehicles: int, seconds: int, warmup: int, repeats: int, broker_url: str | None,
    say: Callable[[str], None] = err.print,
) -> dict[str, Any]:
    """The realistic run (see the module docstring): ``warmup`` simulated seconds, then
    ``repeats`` windows of ``seconds``; returns the JSON figures."""
    from drivetrain.cloud.fleet import cloud_signing_key
    from drivetrain.commands.sim import provision_fleet
    from drivetrain.core.transport.factory import open_transport
    from drivetrain.sim.fleet import FleetRunner, FleetSpec, RunnerOptions, plan_fleet

    cores = Cores.pick()
    _pin_process(os.getpid(), cores.sim)
    with tempfile.TemporaryDirectory(prefix="fleet_sim_ingest_") as tmp, \
            _broker(broker_url, Path(tmp)) as (broker, broker_pid):  # fmt: skip
        data_dir = Path(tmp) / "data"
        # pinned as for the worker below: a fleet profile or database URL in the environment
        # would put the vehicles in another state database than the one the worker reads
        settings = load_settings(
            data_dir=data_dir, deployment="embedded", profile="embedded", broker_url=broker,
            database_url=None, backbone_url=None, lake_url=None,
        )  # fmt: skip
        database = Database(settings.state_database_url)
        database.upgrade()
        ensure_embedded_bootstrap(settings, database)
        start = float(int(time.time()) - warmup - seconds * repeats - 60)
        plan = plan_fleet(FleetSpec(vehicles=vehicles, seed=7, start_utc=start))
        say(f"provisioning {vehicles:,} vehicles; ingest worker on CPU {cores.ingest}, "
            f"simulator on CPU {cores.sim}")  # fmt: skip
        identities = provision_fleet(
            database, plan.vehicles, tenant=TENANT, cloud_key=cloud_signing_key(settings),
            actor="benchmark",
        )  # fmt: skip
        log = Path(tmp) / "worker.log"
        worker = _worker(data_dir, broker, cores.ingest, log)
        transport = runner = None
        try:
            _wait_ready(worker, log)
            ingest_cpu_start = _cpu_s(worker.pid)
            transport = open_transport(broker, client_id=f"bench-sim-{os.getpid()}")
            options = RunnerOptions(batch_interval_s=10.0, buffer="sqlite", buffer_dir=Path(tmp))
            runner = FleetRunner(plan, transport, identities, options)
            for _ in range(warmup):
                runner.step()
            sim_cpu, broker_cpu, walls = [], [], []
            for r in range(repeats):
                before = (_cpu_s("self"), _cpu_s(broker_pid) if broker_pid else 0.0,
                          time.perf_counter())  # fmt: skip
                for _ in range(seconds):
                    runner.step()
                after = (_cpu_s("self"), _cpu_s(broker_pid) if broker_pid else 0.0,
                         time.perf_counter())  # fmt: skip
                sim_cpu.append((after[0] - before[0]) / seconds)
                broker_cpu.append((after[1] - before[1]) / seconds)
                walls.append((after[2] - before[2]) / seconds)
                say(f"window {r + 1}/{repeats}: simulator {sim_cpu[-1]:.3f} CPU-s per simulated "
                    f"s (x{1 / sim_cpu[-1]:.2f} real time on one core)")  # fmt: skip
            runner.finish()
            sent = runner.signals_collected
            status = runner.status()
            drained_at = time.perf_counter()
            ingested = _ingested_samples(database)
            while ingested < sent and time.perf_counter() - drained_at < DRAIN_TIMEOUT_S:
                if worker.poll() is not None:
                    tail = log.read_bytes()[-2000:].decode(errors="replace")
                    raise RuntimeError(f"the ingest worker exited; its log ends:\n{tail}")
                time.sleep(0.5)
                ingested = _ingested_samples(database)
            drain_s = time.perf_counter() - drained_at
            simulated_s = runner.sim_time_s
            ingest = (_cpu_s(worker.pid) - ingest_cpu_start) / simulated_s
        finally:
            if runner is not None:
                runner.close()
            if transport is not None:
                transport.close()
            worker.terminate()
            worker.wait(timeout=60)
            database.dispose()
    sim = statistics.median(sim_cpu)
    return {
        "vehicles": vehicles,
        "ingest": True,
        "ingest_process": "drivetrain worker ingest",
        "broker": "given" if broker_url else "private mosquitto",
        "sim_core": cores.sim,
        "ingest_core": cores.ingest,
        "simulated_s_per_measurement": seconds,
        "repeats": repeats,
        "sim_cpu_s_per_simulated_s": round(sim, 4),
        "speedup_vs_real_time": round(1 / sim, 3),
        "wall_speedup_vs_real_time": round(1 / statistics.median(walls), 3),
        "ingest_cpu_s_per_simulated_s": round(ingest, 4),
        "broker_cpu_s_per_simulated_s": round(statistics.median(broker_cpu), 4),
        "signals_per_cpu_s": round(status.signals / status.sim_time_s / sim),
        "samples_sent": sent,
        "samples_ingested": ingested,
        "ingest_drain_s": round(drain_s, 1),
        "ingest_keeps_up": ingest < 1.0 and ingested >= sent,
        "telemetry_messages_published": status.batches_published,
    }
