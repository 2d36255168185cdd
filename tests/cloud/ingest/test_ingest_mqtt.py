"""`drivetrain worker ingest` against a real Mosquitto: two workers share the stream, one is
killed mid-stream (SIGKILL) and restarted with the same client id, and every sample is stored
exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker

BATCHES = 240
SAMPLES = 25
READY = "consuming $share/"


class WorkerProcess:
    """One `drivetrain worker ingest` subprocess."""

    def __init__(
        self, client_id: str, broker: str, env: dict[str, str], log: Path, max_delay_ms: int = 30
    ) -> None:
        self.client_id = client_id
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drivetrain",
                "worker",
                "ingest",
                "--broker",
                broker,
                "--client-id",
                client_id,
                "--max-batch-messages",
                "64",
                "--max-delay-ms",
                str(max_delay_ms),
                "--status-interval-s",
                "0.5",
            ],
            env=env,
            stdout=self._out,
            stderr=self._out,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if READY in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"worker {self.client_id} did not start: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        self._out.close()
        return code


@pytest.fixture
def worker_env(database: Database, database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
        "DRIVETRAIN_DATABASE_URL": database_url,
        "DRIVETRAIN_DEPLOYMENT": "embedded",
        "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml"),
    }
    yield env


def _stored(data_dir: Path) -> dict[str, int]:
    """Rows per batch id in tenant acme's lake (every region)."""
    with Lake(data_dir) as lake:
        if not lake.regions():
            return {}
        table = lake.sql("acme", "SELECT batch_id, count(*) AS n FROM telemetry GROUP BY batch_id")
    return dict(
        zip(table.column("batch_id").to_pylist(), table.column("n").to_pylist(), strict=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_killing_a_worker_mid_stream_loses_and_duplicates_nothing(
    fleet: Fleet,
    private_broker: PrivateBroker,
    worker_env: dict[str, str],
    tmp_path: Path,
    report_figure,  # type: ignore[no-untyped-def]
) -> None:
    data_dir = Path(worker_env["DRIVETRAIN_DATA_DIR"])
    logs = tmp_path / "logs"
    logs.mkdir()
    # The victim waits up to 400 ms to fill a micro-batch, so when it is killed it holds
    # received, unacknowledged messages: the broker must redeliver them after the restart.
    victim = {"max_delay_ms": 400}
    workers = {
        "ingest-a": WorkerProcess(
            "ingest-a", private_broker.url, worker_env, logs / "ingest-a.log", **victim
        ),
        "ingest-b": WorkerProcess(
            "ingest-b", private_broker.url, worker_env, logs / "ingest-b.log"
        ),
    }
    for worker in workers.values():
        worker.wait_ready()
    now = wall_clock_ns()
    names = ("eu1", "eu2", "us1")
    messages = [
        telemetry(
            fleet.vin(names[i % 3]),
            fleet.key(names[i % 3]),
            [(SOC, now + i * 1000 + j, float(j)) for j in range(SAMPLES)],
            seq=i,
        )
        for i in range(BATCHES)
    ]
    errors: list[Exception] = []

    def publish_steadily() -> None:
        try:
            with MqttTransport(private_broker.url, client_id="vehicles") as publisher:
                for message in messages:
                    publisher.publish(message.topic, message.payload, qos=1)
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    vehicles = threading.Thread(target=publish_steadily)
    vehicles.start()
    deadline = time.monotonic() + 30
    while not _stored(data_dir) and time.monotonic() < deadline:  # mid-stream: some stored
        time.sleep(0.02)
    assert vehicles.is_alive(), "the stream ended before the kill; publish more batches"
    workers["ingest-a"].stop(signal.SIGKILL)
    time.sleep(0.3)
    workers["ingest-a"] = WorkerProcess(
        "ingest-a", private_broker.url, worker_env, logs / "ingest-a.log", **victim
    )
    workers["ingest-a"].wait_ready()
    vehicles.join(60)
    assert not errors, errors
    deadline = time.monotonic() + 90
    stored = _stored(data_dir)
    while sum(stored.values()) < BATCHES * SAMPLES and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = _stored(data_dir)
    codes = [w.stop() for w in workers.values()]
    assert len(stored) == BATCHES, f"{BATCHES - len(stored)} batches missing"
    assert set(stored.values()) == {SAMPLES}, "some batch stored more or less than once"
    assert sum(stored.values()) == BATCHES * SAMPLES
    assert codes == [0, 0]  # SIGTERM: finish the micro-batch, acknowledge, exit cleanly
    log_a = (logs / "ingest-a.log").read_text()
    assert log_a.count(READY) == 2  # killed once, restarted with the same client id
    broker_log = private_broker.log_file.read_text(errors="replace")
    redelivered = broker_log.count("Sending PUBLISH to ingest-a (d1")
    assert redelivered > 0, "the killed worker held no unacknowledged message"
    report_figure(
        f"{BATCHES} batches / {BATCHES * SAMPLES} samples stored exactly once "
        f"across a SIGKILLed worker ({redelivered} messages redelivered)"
    )
