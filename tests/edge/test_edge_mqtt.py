"""The edge agent against a real Mosquitto: a 30 s broker outage loses and duplicates nothing;
kill -9 of the agent mid-stream loses nothing its buffer acknowledged; signed downlink over
the broker is applied and acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from edge_testkit import CloudReceiver, CloudSigner, make_identity, wait_for

from drivetrain.core.transport import MqttTransport, vehicle_filter
from drivetrain.core.transport.testing import PrivateBroker, unique_name
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import MessageKind
from drivetrain.edge import (
    AgentConfig,
    Campaign,
    EdgeAgent,
    InMemoryActuator,
    Samples,
    SqliteBuffer,
)

SPEED = "Vehicle.Speed"
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
CHILD = Path(__file__).with_name("_agent_child.py")
CATALOG = builtin_catalog()

pytestmark = pytest.mark.slow


def _client(url: str, client_id: str) -> MqttTransport:
    return MqttTransport(
        url,
        client_id=client_id,
        session_expiry_s=600,
        reconnect_min_delay_s=0.1,
        reconnect_max_delay_s=1.0,
    )


@pytest.fixture
def closing() -> Iterator[Callable[[MqttTransport], MqttTransport]]:
    made: list[MqttTransport] = []

    def keep(transport: MqttTransport) -> MqttTransport:
        made.append(transport)
        return transport

    yield keep
    for transport in reversed(made):
        transport.close()


class Streamer(threading.Thread):
    """Ticks an agent every ``period_s`` with a fresh, unique Vehicle.Speed sample."""

    def __init__(self, agent: EdgeAgent, period_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.agent = agent
        self.period_s = period_s
        self.generated: list[tuple[str, int]] = []
        self.stop_event = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                now = time.time_ns()
                value = float(len(self.generated))
                self.agent.tick(now, samples=Samples.from_values({SPEED: value}, now))
                self.generated.append((SPEED, now))
                self.stop_event.wait(self.period_s)
        except Exception as e:  # noqa: BLE001 - re-raised on the test's thread by finish()
            self.error = e

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)
        if self.error is not None:
            raise self.error


def test_broker_down_for_30_s_loses_nothing_duplicates_nothing_and_keeps_order(
    private_broker: PrivateBroker,
    tmp_path: Path,
    closing: Callable[[MqttTransport], MqttTransport],
    report_figure: Callable[[str], None],
) -> None:
    identity = make_identity()
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    cloud = closing(_client(private_broker.url, unique_name("cloud")))
    cloud.subscribe(vehicle_filter("#", vin=identity.vin), receiver.handle)
    vehicle = closing(_client(private_broker.url, identity.vin))
    agent = EdgeAgent(
        identity,
        vehicle,
        SqliteBuffer(tmp_path / "buffer.db"),
        catalog=CATALOG,
        config=AgentConfig(batch_interval_s=0.25),
    )
    agent.install_local([Campaign.from_dict(
        {"id": "every-sample", "version": 1, "signals": [SPEED], "period_ms": 10}, CATALOG
    )])  # fmt: skip
    agent.start()
    streamer = Streamer(agent)
    streamer.start()
    def newest_received_ns() -> int:
        return max((int(m.body.ts_ns.max()) for m in receiver.of(MessageKind.TELEMETRY)
                    if len(m.body.ts_ns)), default=0)

    wait_for(lambda: len(receiver.of(MessageKind.TELEMETRY)) >= 2, timeout_s=30,
             what="the first batches delivered")
    before_outage = len(streamer.generated)
    private_broker.stop()
    outage_started = time.monotonic()
    time.sleep(30)
    during_outage = len(streamer.generated) - before_outage
    buffered = agent.buffer.stats().messages
    private_broker.start()
    outage_s = time.monotonic() - outage_started
    restarted_ns = time.time_ns()
    # Streaming goes on after the restart until a sample generated after it has arrived (the
    # backlog is sent first, in order).
    wait_for(lambda: newest_received_ns() > restarted_ns, timeout_s=60,
             what="a sample generated after the restart at the receiver")
    streamer.finish()
    agent.flush()
    expected = set(streamer.generated)

    def all_arrived() -> bool:
        agent.uplink.pump(time.time())
        return {(p, ts) for p, ts, _ in receiver.samples()} >= expected

    wait_for(all_arrived, timeout_s=60, what="every generated sample at the receiver")
    received = receiver.samples()
    counts = Counter((p, ts) for p, ts, _ in received)
    assert set(counts) == expected
    # Samples are counted over distinct batch ids: none was sealed into two batches, and every
    # re-delivery of a batch id carried the same bytes, so dropping it by id lost nothing.
    assert max(counts.values()) == 1
    assert receiver.conflicts == []
    seqs = [m.seq for m in receiver.of(MessageKind.TELEMETRY)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order
    timestamps = [ts for _, ts, _ in received]
    assert timestamps == sorted(timestamps)
    assert during_outage > 500 and buffered > 50  # the outage really held data back
    stats = agent.stats().uplink
    assert stats.refused_by_transport > 0
    report_figure(
        f"{outage_s:.1f} s broker outage: {during_outage} samples generated during it, "
        f"{len(expected)} in all, all delivered once in order; {receiver.duplicates} "
        f"re-deliveries dropped by batch id; {buffered} batches held in the buffer"
    )


def test_kill_9_of_the_agent_mid_stream_loses_nothing_acknowledged(
    private_broker: PrivateBroker,
    tmp_path: Path,
    closing: Callable[[MqttTransport], MqttTransport],
    report_figure: Callable[[str], None],
) -> None:
    identity = make_identity("DTV7K2M9PT4XN6RW1")
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    cloud = closing(_client(private_broker.url, unique_name("cloud")))
    cloud.subscribe(vehicle_filter("#", vin=identity.vin), receiver.handle)
    buffer_path, log_path = tmp_path / "buffer.db", tmp_path / "acknowledged.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHILD.parent), *sys.path])}
    command = [
        sys.executable,
        str(CHILD),
        str(buffer_path),
        str(log_path),
        private_broker.url,
        identity.vin,
    ]
    rng = random.Random(20240607)
    kills = 5
    for _ in range(kills):
        child = subprocess.Popen(command, env=env)
        start = log_path.stat().st_size if log_path.exists() else 0

        def sealed(child: subprocess.Popen[bytes] = child, start: int = start) -> bool:
            grown = log_path.exists() and log_path.stat().st_size > start
            return grown or child.poll() is not None

        wait_for(sealed, timeout_s=30, what="the agent to seal a batch")
        assert child.poll() is None, f"agent exited with {child.returncode}"
        time.sleep(rng.uniform(0.3, 1.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
    subprocess.run([*command, "drain"], env=env, timeout=120, check=True)
    acknowledged = log_path.read_text().split()
    wait_for(
        lambda: {m.message_id for m in receiver.of(MessageKind.TELEMETRY)} >= set(acknowledged),
        timeout_s=30,
        what="every acknowledged batch at the receiver",
    )
    received_ids = [m.message_id for m in receiver.of(MessageKind.TELEMETRY)]
    assert set(acknowledged) <= set(received_ids)
    # A killed agent re-sends what the broker had not confirmed: the same batch id with the
    # same bytes (dropped by id, nothing lost), never the same samples under a new batch id.
    assert receiver.conflicts == []
    counts = Counter((p, ts) for p, ts, _ in receiver.samples())
    assert max(counts.values()) == 1
    assert SqliteBuffer(buffer_path).stats().messages == 0
    report_figure(
        f"{kills} x kill -9: {len(acknowledged)} acknowledged batches all delivered once; "
        f"{receiver.duplicates} re-deliveries dropped by batch id"
    )


def test_signed_desired_state_over_the_broker_is_applied_and_acknowledged(
    mqtt_url: str,
    tmp_path: Path,
    closing: Callable[[MqttTransport], MqttTransport],
) -> None:
    identity = make_identity("DTVR3W8KX2T5N7PL4")
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    cloud = closing(_client(mqtt_url, unique_name("cloud")))
    cloud.subscribe(vehicle_filter("#", vin=identity.vin), receiver.handle)
    actuator = InMemoryActuator(CATALOG, {CHARGE_LIMIT: 90})
    vehicle = closing(_client(mqtt_url, unique_name("vehicle")))
    agent = EdgeAgent(
        identity, vehicle, SqliteBuffer(tmp_path / "b.db"), catalog=CATALOG, actuator=actuator
    )
    agent.start()
    topic, payload = CloudSigner().seal(
        MessageKind.DESIRED_STATE,
        identity.vin,
        {"version": 1, "values": {CHARGE_LIMIT: 75}},
        sent_ns=time.time_ns(),
    )
    cloud.publish(topic, payload, qos=1, retain=True)
    try:

        def acknowledged() -> bool:
            agent.tick()
            return bool(receiver.acks())

        wait_for(acknowledged, timeout_s=15, what="the vehicle's ack")
        assert actuator.values[CHARGE_LIMIT] == 75
        assert receiver.acks()[0].status == "applied"
        wait_for(
            lambda: any(p == CHARGE_LIMIT for p, _, _ in receiver.samples()), what="the report"
        )
    finally:
        cloud.publish(topic, b"", qos=1, retain=True)  # clear the retained message


def test_a_command_received_just_before_a_crash_is_delivered_again_and_run_once(
    mqtt_url: str, tmp_path: Path, closing: Callable[[MqttTransport], MqttTransport]
) -> None:
    identity = make_identity("DTVW4P8N2TXK7R3M5")
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    cloud = closing(_client(mqtt_url, unique_name("cloud")))
    cloud.subscribe(vehicle_filter("#", vin=identity.vin), receiver.handle)
    client_id = unique_name("vehicle")
    actuator = InMemoryActuator(CATALOG, commands={"honk": lambda args: "honked"})

    def vehicle() -> EdgeAgent:
        agent = EdgeAgent(
            identity, _client(mqtt_url, client_id), SqliteBuffer(tmp_path / "b.db"),
            catalog=CATALOG, actuator=actuator,
        )  # fmt: skip
        agent.start()
        return agent

    crashed = vehicle()
    cloud.publish(*CloudSigner().seal(
        MessageKind.COMMAND, identity.vin, {"name": "honk", "args": {}}, sent_ns=time.time_ns()
    ), qos=1)  # fmt: skip
    wait_for(lambda: len(crashed._inbox) == 1, what="the command in the agent's inbox")
    crashed.transport.close()  # gone before handling it: never acknowledged to the broker
    restarted = vehicle()
    closing(restarted.transport)  # type: ignore[arg-type]

    def acknowledged() -> bool:
        restarted.tick()
        return bool(receiver.acks())

    wait_for(acknowledged, timeout_s=15, what="the command's ack after the restart")
    assert actuator.executed == [("honk", {})]
    assert receiver.acks()[0].status == "applied"
