"""Benchmark: the fleet runner's sustained VSS signals per second, against a per-vehicle loop,
and the realistic run: ``drivetrain sim fleet``'s path with ingest in its own process.

    python benchmarks/fleet_sim.py [--quick] [--vehicles N] [--seconds S] [--repeats R]
                                   [--broker URL]

Ours: ``FleetRunner`` with ``--vehicles`` vehicles (default 2,000, also in ``--quick``), run
as fast as it goes (``speedup=0``) after a warm-up. The pipeline measured is the whole one:
the world (drivers, routes, chargers), vectorised physics and wear; per vehicle model one CAN
frame synthesis (every message at its DBC period, counters, CRCs, jitter) and one
``BatchDecoder`` pass over every frame; the CAN feeder and the DBC→VSS map; one real
``EdgeAgent`` per vehicle (campaign sampling at 1 Hz, Arrow IPC + zstd batches sealed with the
vehicle's Ed25519 key every 10 simulated seconds, appended to the fleet's SQLite
store-and-forward database, published) and the in-process transport delivering every batch to
a subscriber. Figure: ``signals_per_s`` = VSS samples the agents collected ÷ wall seconds
(vehicles × signals per vehicle per simulated second × speed-up).

Baseline, in the same run: the straightforward way for a sample of vehicles — per vehicle in a
Python loop, the same world and physics (a one-vehicle ``VirtualFleet``), each frame of its
bus encoded with cantools' ``encode_message`` (counters set, CRCs not computed) and decoded
with ``decode_message``, mapped to VSS with the same map in Python, sampled at 1 Hz, sealed
into the same signed telemetry batches every 10 s and published on the same transport.

Each measurement of ours (``--seconds`` simulated seconds) is paired with one of the baseline
right after it; figures are medians, the ratio the median of per-pair ratios. These top-level
figures run without ingest (``"ingest": false``) and unpinned, in wall seconds.

``realistic`` (``_fleet_ingest.py``): the same number of vehicles provisioned in a state
database as ``drivetrain sim fleet`` does, publishing through MQTT (a private Mosquitto, or
``--broker``) to ``drivetrain worker ingest`` in its own process, which stores everything in
the lake and the twins; the simulator pinned to one CPU, the worker to another. After a
warm-up of ``--warmup`` simulated seconds (at least one agent tick), ``--repeats`` windows of
``--seconds``: ``sim_cpu_s_per_simulated_s`` and ``speedup_vs_real_time`` (its inverse: the
real-time factor on one core), the worker's ``ingest_cpu_s_per_simulated_s`` and whether it
kept up (``ingest_keeps_up``: under one CPU-second per simulated second, every sample sent
stored). CPU-seconds, so a busy neighbour changes them little; ``wall_speedup_vs_real_time``
is there too. Progress goes to stderr; the last line on stdout is one JSON object (see
benchmarks/README.md) with ``peak_rss_mb``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _fleet_ingest as realistic
import numpy as np
from rich.console import Console

from drivetrain.core.errors import ConfigurationError

err = Console(stderr=True)

BATCH_INTERVAL_S = 10.0
START_UTC = float(int(time.time()) - 86_400)


@dataclass
class Receiver:
    """Counts the telemetry messages and bytes the transport delivers from ``vins``."""

    vins: frozenset[str] = frozenset()
    messages: int = 0
    payload_bytes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        from drivetrain.core.transport import parse_vehicle_topic

        if parse_vehicle_topic(message.topic).vin not in self.vins:
            return
        with self._lock:
            self.messages += 1
            self.payload_bytes += len(message.payload)


def _ours_window(runner: Any, seconds: int) -> tuple[float, int]:
    """Run ``seconds`` simulated seconds; (wall seconds, signals collected)."""
    before = runner.signals_collected
    started = time.perf_counter()
    for _ in range(seconds):
        runner.step()
    return time.perf_counter() - started, runner.signals_collected - before


def _initial(signal: Any) -> float:
    """A signal's start value as a number (its DBC initial value, else its minimum or 0)."""
    if signal.raw_initial is not None:
        return float(signal.raw_initial) * signal.scale + signal.offset
    return float(max(signal.minimum or 0.0, 0.0))


class BaselineVehicle:
    """One vehicle the straightforward way (see the module docstring)."""

    def __init__(self, index: int, seed: int, transport: Any) -> None:
        import cantools

        from drivetrain.core.crypto import SigningKey
        from drivetrain.sim.can.vehicles import dbc_path, load_vehicle_can
        from drivetrain.sim.fleet.plan import CAN_MODEL
        from drivetrain.sim.world import FleetConfig, VirtualFleet

        model = ("compact-hatch-50", "midsize-suv-77")[index % 2]
        self.world = VirtualFleet(
            FleetConfig(vehicles=1, seed=seed + index, model_mix={model: 1.0}, start_utc=START_UTC)
        )
        self.world.depart_at[:] = self.world.time_utc
        can = load_vehicle_can(CAN_MODEL[model])
        self.db = cantools.database.load_file(dbc_path(CAN_MODEL[model]), strict=False)
        self.vin = self.world.vins[0]
        self.key = SigningKey.generate()
        self.transport = transport
        self.inverse: dict[str, list[tuple[str, str, float, float]]] = {}
        self.forward: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
        for entry in can.signal_map.mappings:
            conversion = entry.conversion()
            self.inverse.setdefault(entry.vss_path, []).append(
                (entry.message, entry.signal, conversion.factor, conversion.offset)
            )
            self.forward.setdefault((entry.message, entry.signal), []).append(
                (entry.vss_path, conversion.factor, conversion.offset)
            )
        self.counters: dict[str, int] = {}
        self.pending: list[tuple[str, int, float]] = []
        self.time_s = 0.0
        self.seq = 0
        self.signals = 0

    def _signal_values(self, vss: dict[str, Any]) -> dict[str, dict[str, float]]:
        values: dict[str, dict[str, float]] = {
            m.name: {s.name: _initial(s) for s in m.signals} for m in self.db.messages
        }
        for path, targets in self.inverse.items():
            if path not in vss:
                continue
            value = vss[path][0]
            if np.ma.is_masked(value):
                continue
            for message, signal, factor, offset in targets:
                values[message][signal] = (float(value) - offset) / factor
        return values

    def step(self) -> None:
        self.world.step(1.0)
        values = self._signal_values(self.world.vss_values())
        start = self.time_s
        first: dict[str, tuple[int, float]] = {}
        for message in self.db.messages:
            period = (message.cycle_time or 1000) / 1000.0
            frames = round(1.0 / period) if period < 1.0 else int(start % round(period) == 0)
            mux = next((s for s in message.signals if s.is_multiplexer), None)
            for k in range(frames):
                data = dict(values[message.name])
                count = self.counters.get(message.name, 0)
                self.counters[message.name] = count + 1
                for s in message.signals:
                    if "counter" in s.name.lower() or "alive" in s.name.lower():
                        data[s.name] = count % (1 << s.length)
                if mux is not None:
                    pages = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())})
                    page = pages[count % len(pages)]
                    data = {
                        n: v
                        for n, v in data.items()
                        if (sig := message.get_signal_by_name(n)).multiplexer_ids is None
                        or page in sig.multiplexer_ids
                    }
                    data[mux.name] = page
                payload = message.encode(data, scaling=True, strict=False)
                decoded = self.db.decode_message(message.frame_id, payload, decode_choices=False)
                ts_ns = int((START_UTC + start + k * period) * 1e9)
                for signal, raw in decoded.items():
                    for path, factor, offset in self.forward.get((message.name, signal), ()):
                        if path not in first:
                            first[path] = (ts_ns, float(raw) * factor + offset)
        self.pending.extend((p, t, v) for p, (t, v) in first.items())
        self.signals += len(first)
        self.time_s += 1.0
        if self.time_s % BATCH_INTERVAL_S == 0:
            self.flush()

    def flush(self) -> None:
        from drivetrain.core.transport import TELEMETRY, vehicle_topic
        from drivetrain.core.wire import samples_table, seal_telemetry

        if not self.pending:
            return
        paths = sorted({p for p, _, _ in self.pending})
        index = {p: i for i, p in enumerate(paths)}
        table = samples_table(
            paths,
            [index[p] for p, _, _ in self.pending],
            [t for _, t, _ in self.pending],
            [v for _, _, v in self.pending],
        )
        payload = seal_telemetry(self.vin, table, key=self.key, seq=self.seq)
        self.seq += 1
        self.transport.publish(vehicle_topic(self.vin, TELEMETRY), payload, qos=1)
        self.pending = []


def _baseline_window(vehicles: list[BaselineVehicle], seconds: int) -> tuple[float, int]:
    before = sum(v.signals for v in vehicles)
    started = time.perf_counter()
    for _ in range(seconds):
        for vehicle in vehicles:
            vehicle.step()
    return time.perf_counter() - started, sum(v.signals for v in vehicles) - before


def _legacy(args: argparse.Namespace) -> dict[str, Any]:
    """The first measurement: in-process transport to a subscriber, no ingest, unpinned, wall
    seconds, paired with the per-vehicle baseline."""
    seconds, repeats, sample, warmup = args.seconds, args.repeats, args.baseline_vehicles, args.warmup
    from drivetrain.core.transport import TELEMETRY, InProcessTransport, vehicle_filter
    from drivetrain.sim.fleet import (
        FleetRunner,
        FleetSpec,
        RunnerOptions,
        local_identities,
        plan_fleet,
    )

    transport = InProcessTransport(max_queue=100_000)
    with tempfile.TemporaryDirectory(prefix="fleet_sim_bench_") as tmp:
        with err.status(f"building a fleet of {args.vehicles:,} vehicles and their agents"):
            started = time.perf_counter()
            plan = plan_fleet(FleetSpec(vehicles=args.vehicles, seed=1, start_utc=START_UTC))
            receiver = Receiver(frozenset(v.vin for v in plan.vehicles))
            transport.subscribe(vehicle_filter(TELEMETRY), receiver)
            options = RunnerOptions(
                batch_interval_s=BATCH_INTERVAL_S, buffer="sqlite", buffer_dir=Path(tmp)
            )
            runner = FleetRunner(plan, transport, local_identities(plan.vehicles), options)
            baseline = [BaselineVehicle(i, 1, transport) for i in range(sample)]
            setup_s = time.perf_counter() - started
        err.print(f"set up in {setup_s:.1f} s; warming up ({warmup} simulated s)")
        with err.status("warm-up"):
            for _ in range(warmup):
                runner.step()
            _baseline_window(baseline, 2)
        ours_rates, base_rates, ratios, speedups = [], [], [], []
        stage0 = dict(runner.stage_times.to_dict())
        measured_s = 0.0
        for r in range(repeats):
            with err.status(f"pair {r + 1}/{repeats}: {args.vehicles:,} vehicles x {seconds} s"):
                wall, signals = _ours_window(runner, seconds)
            with err.status(f"pair {r + 1}/{repeats}: baseline, {sample} vehicles x {seconds} s"):
                base_wall, base_signals = _baseline_window(baseline, seconds)
            ours_rates.append(signals / wall)
            base_rates.append(base_signals / base_wall)
            ratios.append(ours_rates[-1] / base_rates[-1])
            speedups.append(seconds / wall)
            measured_s += wall
            err.print(
                f"pair {r + 1}: ours {ours_rates[-1]:,.0f} signals/s (x{speedups[-1]:.2f} real time), "
                f"baseline {base_rates[-1]:,.0f} signals/s"
            )
        stages = {
            k: (v - stage0[k]) / (repeats * seconds)
            for k, v in runner.stage_times.to_dict().items()
        }
        status = runner.status()
        with err.status("sealing and delivering what the agents hold"):
            runner.finish()
            transport.drain(timeout_s=60)
        runner.close()
    transport.close()
    signals_per_vehicle = status.signals / args.vehicles / status.sim_time_s
    result = {
        "vehicles": args.vehicles,
        "signals_per_vehicle": round(signals_per_vehicle, 1),
        "simulated_s_per_measurement": seconds,
        "repeats": repeats,
        "signals_per_s": round(statistics.median(ours_rates)),
        "speedup_vs_real_time": round(statistics.median(speedups), 3),
        "frames_per_s": round(status.frames / (status.sim_time_s) * statistics.median(speedups)),
        "stage_wall_s_per_simulated_s": {k: round(v, 4) for k, v in stages.items()},
        "telemetry_messages_delivered": receiver.messages,
        "telemetry_bytes_delivered": receiver.payload_bytes,
        "setup_s": round(setup_s, 1),
        "pipeline": "world+physics+wear, CAN synthesis, BatchDecoder on every frame, CAN feeder, "
        "DBC->VSS map, EdgeAgent per vehicle (1 Hz sampling, signed Arrow batches, "
        "SQLite store-and-forward), in-process transport to a subscriber",
        "baseline": "per-vehicle Python loop: same world+physics, cantools encode_message + "
        "decode_message per frame, same map, 1 Hz sampling, same signed batches",
        "baseline_vehicles": sample,
        "baseline_signals_per_s": round(statistics.median(base_rates)),
        "ratio": round(statistics.median(ratios), 2),
        "ingest": False,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 pair of 10 simulated seconds, 1 realistic window; under a minute"
    )
    parser.add_argument(
        "--vehicles", type=int, default=2000, help="vehicles in the fleet (default 2,000)"
    )
    parser.add_argument(
        "--seconds", type=int, help="simulated seconds per measurement (default 30; quick 10)"
    )
    parser.add_argument("--repeats", type=int, help="measurement pairs and realistic windows (default 3; quick 1)")
    parser.add_argument(
        "--baseline-vehicles", type=int, help="vehicles in the baseline sample (default 4; quick 2)"
    )
    parser.add_argument(
        "--warmup", type=int, help="simulated seconds before measuring (default 10; quick 5)"
    )
    parser.add_argument(
        "--broker", help="MQTT broker for the realistic run (default: a private Mosquitto started for it)"
    )
    args = parser.parse_args(argv)
    from drivetrain.sim.fleet import RunnerOptions

    args.seconds = args.seconds or (10 if args.quick else 30)
    args.repeats = max(1, args.repeats or (1 if args.quick else 3))
    args.baseline_vehicles = max(1, args.baseline_vehicles or (2 if args.quick else 4))
    args.warmup = args.warmup if args.warmup is not None else (5 if args.quick else 10)
    tick = int(RunnerOptions().agent_tick_s)
    if args.seconds % tick or args.warmup % tick:
        err.print(
            f"[red]error:[/] --seconds and --warmup must be multiples of the agents' tick ({tick} s)"
        )
        return 2
    result = _legacy(args)
    try:
        result["realistic"] = realistic.run(
            args.vehicles, args.seconds, max(args.warmup, tick), args.repeats, args.broker
        )
    except ConfigurationError as e:  # no Mosquitto to start
        err.print(f"[red]error:[/] the realistic run needs a broker: {e}; or pass --broker URL")
        return 2
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
