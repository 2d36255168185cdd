"""``FleetRunner``: many simulated vehicles, each with its own edge agent, in one process.

Each step of ``step_s`` simulated seconds (1 s by default):

1. **World** — drivers, routes, chargers, physics and wear advance every vehicle at once
   (``VirtualFleet.step``), and the fleet's state becomes VSS values (one array per path).
2. **Buses** — per vehicle model, one ``FrameSynthesizer`` call encodes every vehicle's CAN
   traffic for the step's window (counters, CRCs, jitter), attacks are injected into the
   frames of the vehicles under attack, and one ``BatchDecoder`` pass decodes every frame of
   the model's vehicles (see ``canpath``); the CAN feeder forwards changed values plus a
   heartbeat (``feeder``) and the DBC→VSS map turns them into VSS samples, grouped by vehicle.
3. **Edge agents** — each vehicle's ``EdgeAgent.tick`` gets its own samples: the agent runs its
   collection campaigns, seals signed telemetry batches every ``batch_interval_s`` into its
   store-and-forward buffer and publishes them through the shared transport; it applies
   signed desired state from the cloud through ``SimActuator`` (the charge limit). Each agent
   reports its vehicle's ECU inventory when it starts (``SimVehicle.inventory``).

``run(duration_s, speedup)`` paces the steps against the wall clock: ``speedup=1`` is real
time, ``speedup=X`` X times faster, ``speedup=0`` as fast as the machine goes. The simulated
clock starts at ``FleetSpec.start_utc``; the vehicles stamp their samples with it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Self

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch
from drivetrain.core.errors import SimulationConfigError
from drivetrain.core.transport import Transport
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.edge import AgentConfig, Buffer, EdgeAgent, MemoryBuffer, Samples, VehicleIdentity
from drivetrain.sim.can.vehicles import load_vehicle_can
from drivetrain.sim.fleet.actuator import SimActuator
from drivetrain.sim.fleet.buffer import FleetBufferStore
from drivetrain.sim.fleet.canpath import FleetSamples, ModelBus
from drivetrain.sim.fleet.feeder import CanFeeder
from drivetrain.sim.fleet.options import BUFFER_FILE, FrameTamper, RunnerOptions
from drivetrain.sim.fleet.plan import FleetPlan, SimVehicle, check_identities
from drivetrain.sim.fleet.status import FleetStatus, RegionCounts, StageTimes
from drivetrain.sim.world.fleet import DRIVING, PARKED

_NS: Final = 1_000_000_000


@dataclass
class _Group:
    bus: ModelBus
    indices: npt.NDArray[np.intp]
    paths: tuple[str, ...] = field(default_factory=tuple)
    #: decoded samples waiting for the agents' next tick, with their Unix-ns timestamps
    pending: list[tuple[FleetSamples, npt.NDArray[np.int64]]] = field(default_factory=list)


class FleetRunner:
    """Runs a planned fleet with one edge agent per vehicle (see the module docstring).

    Args:
        plan: the fleet (``plan_fleet``).
        transport: the vehicle link every agent publishes through (shared).
        identities: VIN → the vehicle's identity (provisioned keys).
        options: tuning.
        tamper: injects attacks into the buses (``attacks.AttackInjector``), or None.
        catalog: the VSS catalog (default: the built-in one).

    Raises:
        SimulationConfigError: a planned vehicle without an identity, or bad options.
        StorageError: a vehicle's buffer cannot be opened.
    """

    def __init__(
        self,
        plan: FleetPlan,
        transport: Transport,
        identities: Mapping[str, VehicleIdentity],
        options: RunnerOptions | None = None,
        *,
        tamper: FrameTamper | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        check_identities(plan.vehicles, identities)
        self.plan = plan
        self.world = plan.world
        self.vehicles: tuple[SimVehicle, ...] = plan.vehicles
        self.transport = transport
        self.options = options or RunnerOptions()
        self.tamper = tamper
        self.catalog = catalog or builtin_catalog()
        self.feeder = CanFeeder(self.options.feeder_interval_s, clock_offset_s=plan.start_utc)
        self._epoch_ns = round(plan.start_utc * _NS)
        self.sim_time_s = 0.0
        self.stage_times = StageTimes()
        self._groups = self._make_groups()
        self.buffers: list[Buffer] = []
        self.agents: list[EdgeAgent] = []
        self._store: FleetBufferStore | None = None
        # A simulation that ends by now starts its clock behind the wall clock, which dates
        # the cloud's messages (a consent, a command): the cars accept them that far ahead.
        skew = max(AgentConfig.max_skew_s, time.time() - plan.start_utc + AgentConfig.max_skew_s)
        config = AgentConfig(batch_interval_s=self.options.batch_interval_s, max_skew_s=skew)
        try:
            for vehicle in self.vehicles:
                buffer = self._open_buffer(vehicle)
                self.buffers.append(buffer)
                agent = EdgeAgent(
                    identities[vehicle.vin],
                    transport,
                    buffer,
                    catalog=self.catalog,
                    actuator=SimActuator(self.world, vehicle.index, self.catalog),
                    config=config,
                    clock_ns=self.clock_ns,
                    inventory=vehicle.inventory,
                )
                agent.start()
                self.agents.append(agent)
        except BaseException:
            self.close()
            raise
        self._odometer_start_m = self.world.physics.state.odometer_m.copy()
        self._steps = 0
        self._steps_per_tick = round(self.options.agent_tick_s / self.options.step_s)
        self._next_ground_truth_s = 0.0
        self._frames = self._unknown = self._decoded = self._vss = self._signals = 0
        self._decoded_frames = 0
        self._failures = 0
        self._wall_s = 0.0
        self._closed = False

    def _make_groups(self) -> list[_Group]:
        groups: list[_Group] = []
        models = sorted({v.can_model for v in self.vehicles})
        for model in models:
            indices = np.array([v.index for v in self.vehicles if v.can_model == model], np.intp)
            can = load_vehicle_can(model, self.catalog)
            bus = ModelBus(
                can,
                indices.astype(np.int64),
                self.plan.spec.seed,
                can.signal_map.paths,
                self.catalog,
            )
            groups.append(_Group(bus, indices, tuple(bus.mapped_paths)))
        return groups

    def _open_buffer(self, vehicle: SimVehicle) -> Buffer:
        options = self.options
        if options.buffer == "memory":
            return MemoryBuffer(max_bytes=options.buffer_max_bytes)
        if self._store is None:
            assert options.buffer_dir is not None
            self._store = FleetBufferStore(
                options.buffer_dir / BUFFER_FILE, max_bytes_per_vehicle=options.buffer_max_bytes
            )
        return self._store.buffer(vehicle.vin)

    # --- the clock -----------------------------------------------------------------------------

    def clock_ns(self) -> int:
        """The simulated clock now, Unix nanoseconds."""
        return self._epoch_ns + round(self.sim_time_s * _NS)

    @property
    def sim_utc(self) -> float:
        """The simulated clock now, Unix seconds."""
        return self.plan.start_utc + self.sim_time_s

    # --- one step -----------------------------------------------------------------------------

    def step(self) -> None:
        """Advance every vehicle by ``step_s`` (see the module docstring).

        Raises:
            StorageError: a vehicle's buffer failed.
            RuntimeError: the runner is closed.
        """
        if self._closed:
            raise RuntimeError("the fleet runner is closed")
        dt = self.options.step_s
        start_s, end_s = self.sim_time_s, self.sim_time_s + dt
        times = self.stage_times
        t0 = time.perf_counter()
        events = self.world.step(dt)
        self._failures += sum(1 for e in events if e.kind == "failure")
        values = self.world.vss_values()
        if self.options.ground_truth_every_s and start_s >= self._next_ground_truth_s:
            self.world.record_ground_truth()
            self._next_ground_truth_s = start_s + self.options.ground_truth_every_s
        t1 = time.perf_counter()
        times.world_s += t1 - t0
        self.sim_time_s = end_s
        now_ns = self.clock_ns()
        hooked = self.tamper.vehicles_in(start_s, end_s) if self.tamper is not None else frozenset()
        self._steps += 1
        tick = self._steps % self._steps_per_tick == 0
        for group in self._groups:
            t1 = time.perf_counter()
            vss = _group_values(values, group.paths, group.indices)
            positions = [p for p, i in enumerate(group.indices.tolist()) if i in hooked]
            frames = group.bus.frames(
                start_s, end_s, vss, hook=self._hook(group, start_s, end_s), hooked=positions
            )
            t2 = time.perf_counter()
            samples, report = group.bus.decode(frames, self.feeder, (start_s, end_s))
            ts_ns = self._epoch_ns + np.rint(samples.ts_s * _NS).astype(np.int64)
            group.pending.append((samples, ts_ns))
            t3 = time.perf_counter()
            self._frames += report.frames
            self._decoded_frames += report.decoded_frames
            self._unknown += report.unknown_frames
            self._decoded += report.signal_values
            self._vss += report.vss_samples
            times.synthesis_s += t2 - t1
            times.decode_s += t3 - t2
            if tick:
                self._tick_agents(group, now_ns)
                times.agents_s += time.perf_counter() - t3

    def _tick_agents(self, group: _Group, now_ns: int) -> None:
        """Hand each agent of ``group`` its samples since the last tick, and tick it."""
        samples, ts_ns = _merge(group.pending)
        group.pending = []
        offsets = samples.offsets.tolist()
        paths, path_index, value = samples.paths, samples.path_index, samples.value
        agents = self.agents
        collected = 0
        for position, index in enumerate(group.indices.tolist()):
            lo, hi = offsets[position], offsets[position + 1]
            own = Samples(paths, path_index[lo:hi], ts_ns[lo:hi], value[lo:hi])
            collected += agents[index].tick(now_ns, samples=own)
        self._signals += collected

    def _hook(
        self, group: _Group, start_s: float, end_s: float
    ) -> Callable[[int, FrameBatch], FrameBatch] | None:
        tamper = self.tamper
        if tamper is None:
            return None
        indices = group.indices

        def hook(position: int, frames: FrameBatch) -> FrameBatch:
            return tamper.apply(int(indices[position]), frames, start_s, end_s)

        return hook

    # --- running ------------------------------------------------------------------------------

    def run(
        self,
        duration_s: float | None,
        *,
        speedup: float = 1.0,
        stop: threading.Event | None = None,
        on_progress: Callable[[FleetStatus], None] | None = None,
        progress_interval_s: float = 0.5,
    ) -> FleetStatus:
        """Step until ``duration_s`` simulated seconds have passed (None: until ``stop``),
        pacing ``speedup`` simulated seconds per wall second (0: no pacing); then seal and
        send what the agents hold (``finish``).

        ``on_progress`` gets a status about every ``progress_interval_s`` wall seconds.

        Raises:
            SimulationConfigError: a negative ``speedup`` or ``duration_s``, or neither a
                duration nor a stop event.
            StorageError: a vehicle's buffer failed.
        """
        if not (math.isfinite(speedup) and speedup >= 0):
            raise SimulationConfigError(
                f"speedup {speedup!r}; expected >= 0 (0: as fast as possible)"
            )
        if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
            raise SimulationConfigError(f"duration_s {duration_s!r}; expected seconds >= 0")
        if duration_s is None and stop is None:
            raise SimulationConfigError("give duration_s or a stop event, or the run never ends")
        stop = stop or threading.Event()
        steps = None if duration_s is None else math.ceil(duration_s / self.options.step_s - 1e-9)
        wall0 = time.monotonic()
        sim0 = self.sim_time_s
        base_wall = self._wall_s
        next_progress = wall0
        done = 0
        while not stop.is_set() and (steps is None or done < steps):
            self.step()
            done += 1
            now = time.monotonic()
            self._wall_s = base_wall + (now - wall0)
            if on_progress is not None and now >= next_progress:
                on_progress(self.status())
                next_progress = now + progress_interval_s
            if speedup > 0:
                target = wall0 + (self.sim_time_s - sim0) / speedup
                if target > now:
                    stop.wait(target - now)
        self.finish()
        self._wall_s = base_wall + (time.monotonic() - wall0)
        status = self.status()
        if on_progress is not None:
            on_progress(status)
        return status

    def finish(self, timeout_s: float = 10.0) -> None:
        """Tick the agents with what is pending, seal what every agent has collected, and pump
        the uplinks until the buffers are sent or ``timeout_s`` wall seconds have passed.

        Raises:
            StorageError: a vehicle's buffer failed.
        """
        now_ns = self.clock_ns()
        for group in self._groups:
            if group.pending:
                self._tick_agents(group, now_ns)
        for agent in self.agents:
            agent.flush(now_ns)
        deadline = time.monotonic() + timeout_s
        pending = list(self.agents)
        while pending and time.monotonic() < deadline:
            for agent in pending:
                agent.uplink.pump(now_ns / _NS)
            pending = [a for a in pending if not (a.uplink.idle and a.buffer.stats().messages == 0)]
            if pending:
                time.sleep(0.01)

    # --- observing ----------------------------------------------------------------------------

    @property
    def signals_collected(self) -> int:
        """VSS samples the agents' campaigns collected so far (cheap: a counter)."""
        return self._signals

    def status(self) -> FleetStatus:
        """Counts of the run so far (sums over the agents: meant for a view, not every step)."""
        world = self.world
        mode = world.mode
        charging = world.physics.state.charging
        driving = mode != PARKED
        regions: dict[str, RegionCounts] = {}
        codes = np.array(world.region_codes)
        for code in sorted(set(world.region_codes)):
            mask = codes == code
            regions[code] = RegionCounts(
                int(mask.sum()),
                int((driving & mask).sum()),
                int((charging & mask).sum()),
                int((~driving & ~charging & mask).sum()),
            )
        sealed = published = backlog = 0
        for agent in self.agents:
            stats = agent.stats()
            sealed += stats.batches_sealed
            published += stats.uplink.confirmed
            backlog += stats.buffered_messages
        km = float((world.physics.state.odometer_m - self._odometer_start_m).sum()) / 1000.0
        return FleetStatus(
            sim_time_s=self.sim_time_s,
            wall_s=self._wall_s,
            vehicles=len(self.vehicles),
            driving=int((mode == DRIVING).sum() + (mode > DRIVING).sum()),
            charging=int(charging.sum()),
            parked=int((~driving & ~charging).sum()),
            regions=regions,
            frames=self._frames,
            decoded_frames=self._decoded_frames,
            unknown_frames=self._unknown,
            decoded_values=self._decoded,
            vss_samples=self._vss,
            signals=self._signals,
            batches_sealed=sealed,
            batches_published=published,
            buffer_backlog=backlog,
            attacks_active=(
                self.tamper.active(max(0.0, self.sim_time_s - self.options.step_s), self.sim_time_s)
                if self.tamper is not None
                else 0
            ),
            failures=self._failures,
            km_driven=km,
        )

    def close(self) -> None:
        """Stop the agents and close their buffers (the transport belongs to the caller)."""
        self._closed = True
        for agent in self.agents:
            agent.stop()
        for buffer in self.buffers:
            buffer.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        self.agents, self.buffers = [], []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group_values(
    values: Mapping[str, npt.NDArray[np.generic]],
    paths: Sequence[str],
    indices: npt.NDArray[np.intp],
) -> dict[str, npt.NDArray[np.float64]]:
    """The group's VSS values as float arrays; a path the world does not produce, or that none
    of the group's vehicles has (fully masked), is left out (the bus sends its DBC default)."""
    out: dict[str, npt.NDArray[np.float64]] = {}
    for path in paths:
        column = values.get(path)
        if column is None:
            continue
        picked = column[indices]
        if isinstance(picked, np.ma.MaskedArray):
            if picked.mask is not np.ma.nomask and np.all(picked.mask):
                continue
            picked = picked.filled(0)
        out[path] = np.asarray(picked, dtype=np.float64)
    return out


def _merge(
    parts: list[tuple[FleetSamples, npt.NDArray[np.int64]]],
) -> tuple[FleetSamples, npt.NDArray[np.int64]]:
    """Several steps' samples of one group as one, grouped by vehicle (in step order within a
    vehicle)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0][0]
    n = len(first.offsets) - 1
    vehicle = np.concatenate(
        [np.repeat(np.arange(n, dtype=np.uint16), np.diff(p.offsets)) for p, _ in parts]
    )
    order = np.argsort(vehicle, kind="stable")  # 16-bit keys: a radix sort
    counts = sum(np.diff(p.offsets) for p, _ in parts)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    merged = FleetSamples(
        first.paths,
        np.concatenate([p.path_index for p, _ in parts])[order],
        np.concatenate([p.ts_s for p, _ in parts])[order],
        np.concatenate([p.value for p, _ in parts])[order],
        offsets,
    )
    return merged, np.concatenate([t for _, t in parts])[order]
