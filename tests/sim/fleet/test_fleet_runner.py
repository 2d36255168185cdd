"""The fleet runner: deterministic per seed, every agent's telemetry delivered, options checked,
and the charge limit the cloud wants reaches the simulated vehicle and its telemetry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import SimulationConfigError
from drivetrain.core.transport import (
    ACK,
    TELEMETRY,
    InProcessTransport,
    Message,
    vehicle_filter,
    vehicle_topic,
)
from drivetrain.core.wire import (
    Ack,
    DesiredStateDelta,
    MessageKind,
    decode_samples,
    parse,
    seal_json,
)
from drivetrain.sim.fleet import (
    CHARGE_LIMIT,
    FleetRunner,
    FleetSpec,
    RunnerOptions,
    local_identities,
    plan_fleet,
)

START = 1_790_000_000.0


class Inbox:
    """Every telemetry sample and ack the transport delivers, verified with the vehicles' keys."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, str, int, float]] = []
        self.acks: list[tuple[str, Ack]] = []
        self.batches = 0
        self._lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        envelope = parse(message.payload)
        with self._lock:
            if envelope.kind == MessageKind.TELEMETRY:
                table = decode_samples(envelope.body)
                self.batches += 1
                for path, ts, value in zip(
                    table.column("path").to_pylist(),
                    table.column("ts").cast("int64").to_pylist(),
                    table.column("value").to_pylist(),
                    strict=True,
                ):
                    self.samples.append((envelope.vehicle_id, path, ts, value))
            elif envelope.kind == MessageKind.ACK:
                self.acks.append((envelope.vehicle_id, Ack.from_dict(envelope.json_body())))


@pytest.fixture
def bus() -> Iterator[InProcessTransport]:
    transport = InProcessTransport()
    try:
        yield transport
    finally:
        transport.close()


def _run(bus: InProcessTransport, seed: int, tmp: Path, seconds: int = 20) -> Inbox:
    inbox = Inbox()
    bus.subscribe(vehicle_filter(TELEMETRY), inbox)
    plan = plan_fleet(FleetSpec(vehicles=4, seed=seed, start_utc=START))
    options = RunnerOptions(batch_interval_s=10.0, buffer="sqlite", buffer_dir=tmp)
    with FleetRunner(plan, bus, local_identities(plan.vehicles), options) as runner:
        status = runner.run(seconds, speedup=0)
        assert status.buffer_backlog == 0
        assert status.decoded_frames == status.frames > 0 and status.unknown_frames == 0
    bus.drain(timeout_s=10)
    return inbox


def test_same_seed_gives_the_same_telemetry(tmp_path: Path) -> None:
    runs = []
    for i in range(2):
        transport = InProcessTransport()
        try:
            runs.append(_run(transport, 5, tmp_path / f"run{i}"))
        finally:
            transport.close()
    assert runs[0].samples and sorted(runs[0].samples) == sorted(runs[1].samples)


def test_another_seed_gives_other_telemetry(bus: InProcessTransport, tmp_path: Path) -> None:
    a = _run(bus, 5, tmp_path / "a")
    other = InProcessTransport()
    try:
        b = _run(other, 6, tmp_path / "b")
    finally:
        other.close()
    assert sorted(a.samples) != sorted(b.samples)


SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def test_every_vehicle_sends_each_signal_once_per_simulated_second(
    bus: InProcessTransport, tmp_path: Path
) -> None:
    inbox = _run(bus, 7, tmp_path, seconds=20)
    vins = {vin for vin, _, _, _ in inbox.samples}
    assert len(vins) == 4
    for vin in vins:  # (a technical signal: speed is off until the driver consents)
        soc = sorted(ts for v, p, ts, _ in inbox.samples if v == vin and p == SOC)
        seconds = np.floor((np.array(soc) / 1e9) - START)
        assert list(seconds) == list(range(20)), vin  # one sample per simulated second, in order
    assert inbox.batches == 4 * 2  # a batch per vehicle every 10 simulated seconds


def test_runner_paces_real_time_with_speedup_one(bus: InProcessTransport) -> None:
    plan = plan_fleet(FleetSpec(vehicles=2, seed=1, start_utc=START))
    with FleetRunner(plan, bus, local_identities(plan.vehicles)) as runner:
        status = runner.run(2, speedup=1.0)
    assert status.sim_time_s == 2 and status.wall_s >= 1.9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"step_s": 0}, "step_s"),
        ({"agent_tick_s": 2.5}, "agent_tick_s"),
        ({"batch_interval_s": -1}, "batch_interval_s"),
        ({"buffer": "sqlite"}, "buffer_dir"),
        ({"buffer": "disk"}, "buffer"),
    ],
)
def test_bad_runner_options_are_refused_naming_them(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(SimulationConfigError, match=message):
        RunnerOptions(**options)  # type: ignore[arg-type]


def test_bad_fleet_spec_is_refused_naming_the_field() -> None:
    with pytest.raises(SimulationConfigError, match="region 'XX'"):
        FleetSpec(vehicles=2, regions=("EU", "XX"))
    with pytest.raises(SimulationConfigError, match="model 'tractor'"):
        FleetSpec(vehicles=2, model_mix={"tractor": 1.0})
    with pytest.raises(SimulationConfigError, match="vehicles 0"):
        FleetSpec(vehicles=0)


def test_runner_refuses_a_vehicle_without_identity(bus: InProcessTransport) -> None:
    plan = plan_fleet(FleetSpec(vehicles=3, seed=1, start_utc=START))
    identities = local_identities(plan.vehicles[:2])
    with pytest.raises(SimulationConfigError, match="1 planned vehicles have no identity"):
        FleetRunner(plan, bus, identities)


# --- desired state: the charge limit --------------------------------------------------------------


@pytest.fixture
def charging_fleet(bus: InProcessTransport) -> Iterator[tuple[FleetRunner, SigningKey, Inbox]]:
    cloud = SigningKey.generate()
    plan = plan_fleet(FleetSpec(vehicles=2, seed=3, start_utc=START))
    inbox = Inbox()
    bus.subscribe(vehicle_filter(TELEMETRY), inbox)
    bus.subscribe(vehicle_filter(ACK), inbox)
    options = RunnerOptions(agent_tick_s=1.0, batch_interval_s=5.0)
    identities = local_identities(plan.vehicles, cloud_key=cloud.verify_key)
    with FleetRunner(plan, bus, identities, options) as runner:
        yield runner, cloud, inbox


def _desire(
    bus: InProcessTransport, runner: FleetRunner, key: SigningKey, percent: object, version: int
) -> str:
    vin = runner.vehicles[0].vin
    body = DesiredStateDelta(version, {CHARGE_LIMIT: percent}).to_dict()  # type: ignore[dict-item]
    payload = seal_json(
        MessageKind.DESIRED_STATE, vin, body, key=key, seq=version, sent_ns=runner.clock_ns()
    )
    bus.publish(vehicle_topic(vin, "state", "desired"), payload)
    bus.drain(timeout_s=5)
    return vin


def test_desired_charge_limit_changes_the_vehicle_and_shows_in_its_telemetry(
    bus: InProcessTransport, charging_fleet: tuple[FleetRunner, SigningKey, Inbox]
) -> None:
    runner, cloud, inbox = charging_fleet
    runner.run(2, speedup=0)
    vin = _desire(bus, runner, cloud, 65, version=1)
    runner.run(8, speedup=0)
    bus.drain(timeout_s=5)
    assert runner.world.charge_limit[0] == pytest.approx(0.65)
    assert runner.world.charge_limit[1] != pytest.approx(0.65)
    assert [(v, a.status, a.version) for v, a in inbox.acks] == [(vin, "applied", 1)]
    reported = [value for v, p, _, value in inbox.samples if v == vin and p == CHARGE_LIMIT]
    assert reported[-1] == 65  # the bus carries the new limit (DC fast charging would show 80)


def test_charge_limit_outside_what_the_vehicle_accepts_is_rejected_and_changes_nothing(
    bus: InProcessTransport, charging_fleet: tuple[FleetRunner, SigningKey, Inbox]
) -> None:
    runner, cloud, inbox = charging_fleet
    before = runner.world.charge_limit.copy()
    _desire(bus, runner, cloud, 40, version=1)
    runner.run(2, speedup=0)
    bus.drain(timeout_s=5)
    assert np.array_equal(runner.world.charge_limit, before)
    ((_, ack),) = inbox.acks
    assert ack.status == "rejected" and "50 to 100" in ack.detail


def test_charge_limit_signed_by_another_key_is_refused_and_changes_nothing(
    bus: InProcessTransport, charging_fleet: tuple[FleetRunner, SigningKey, Inbox]
) -> None:
    runner, _, inbox = charging_fleet
    before = runner.world.charge_limit.copy()
    _desire(bus, runner, SigningKey.generate(), 70, version=1)
    runner.run(2, speedup=0)
    bus.drain(timeout_s=5)
    assert np.array_equal(runner.world.charge_limit, before)
    assert inbox.acks == []
    assert sum(runner.agents[0].stats().downlink_refused.values()) == 1
