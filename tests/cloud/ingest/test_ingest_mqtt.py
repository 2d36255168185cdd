"""`drivetrain worker ingest` against a real Mosquitto: two workers share the stream, one is
killed mid-stream (SIGKILL) and restarted with the same client id, and every sample is stored
exactly once — in the embedded lake, and in the Delta lake on object storage (moto's S3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ingest_helpers import SOC, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.core.settings import load_settings
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
def started() -> Iterator[list[WorkerProcess]]:
    """Every worker a test starts; those still running when it ends (a failed assertion)
    are killed."""
    workers: list[WorkerProcess] = []
    yield workers
    for worker in workers:
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL)


@pytest.fixture(params=["embedded", "s3"])
def worker_env(
    request: pytest.FixtureRequest, database: Database, database_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "DRIVETRAIN_DATA_DIR": str(tmp_path / "data"),
        "DRIVETRAIN_DATABASE_URL": database_url,
        "DRIVETRAIN_DEPLOYMENT": "embedded",
        "DRIVETRAIN_CONFIG": str(tmp_path / "none.toml"),
    }
    if request.param == "s3":  # the Delta lake on moto's S3 server
        from tests.conftest import MOTO_BUCKET, MOTO_CREDENTIALS

        endpoint = request.getfixturevalue("s3_endpoint")
        env.update(MOTO_CREDENTIALS)
        env["DRIVETRAIN_LAKE_URL"] = f"s3://{MOTO_BUCKET}/k-{uuid.uuid4().hex[:12]}"
        env["DRIVETRAIN_LAKE_STORAGE_OPTIONS"] = json.dumps({
            "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"})
    yield env


def _stored(env: dict[str, str]) -> dict[str, int]:
    """Rows per batch id in tenant acme's lake (every region), the lake the workers write."""
    options = json.loads(env.get("DRIVETRAIN_LAKE_STORAGE_OPTIONS", "{}"))
    settings = load_settings(data_dir=Path(env["DRIVETRAIN_DATA_DIR"]),
                             lake_url=env.get("DRIVETRAIN_LAKE_URL"),
                             lake_storage_options=options)
    with Lake.open(settings) as lake:
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
    started: list[WorkerProcess],
    tmp_path: Path,
    report_figure: Callable[[str], None],
) -> None:
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
    started.extend(workers.values())
    # a commit to the S3 lake takes longer: the stream must still run when the first lands
    pause_s = 0.05 if "DRIVETRAIN_LAKE_URL" in worker_env else 0.01
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
                    time.sleep(pause_s)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    vehicles = threading.Thread(target=publish_steadily)
    vehicles.start()
    deadline = time.monotonic() + 30
    while not _stored(worker_env) and time.monotonic() < deadline:  # mid-stream: some stored
        time.sleep(0.02)
    assert vehicles.is_alive(), "the stream ended before the kill; publish more batches"
    workers["ingest-a"].stop(signal.SIGKILL)
    time.sleep(0.3)
    workers["ingest-a"] = WorkerProcess(
        "ingest-a", private_broker.url, worker_env, logs / "ingest-a.log", **victim
    )
    started.append(workers["ingest-a"])
    workers["ingest-a"].wait_ready()
    vehicles.join(60)
    assert not errors, errors
    deadline = time.monotonic() + 90
    stored = _stored(worker_env)
    while sum(stored.values()) < BATCHES * SAMPLES and time.monotonic() < deadline:
        time.sleep(0.25)
        stored = _stored(worker_env)
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
