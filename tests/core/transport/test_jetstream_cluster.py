"""A 3-node JetStream cluster on loopback (replicas 3): a node killed mid-stream loses no
acknowledged message, and the consumer group hands each one downstream exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drivetrain.core.errors import TransportError
from drivetrain.core.transport import Message
from drivetrain.core.transport.jetstream import JetStreamTransport
from drivetrain.core.transport.jetstream_local import LocalJetStream
from drivetrain.core.transport.jetstream_streams import StreamSpec

pytestmark = pytest.mark.xdist_group("jetstream-cluster")

STREAM = StreamSpec("kill-test", "dt.platform.v1.telemetry", "node-kill test")
MESSAGES = 600


class Downstream:
    """A consumer that stores each message id once (what a lake or twin writer does)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stored: dict[str, bytes] = {}
        self.redeliveries = 0

    def __call__(self, message: Message) -> None:
        with self.lock:
            if message.message_id in self.stored:
                self.redeliveries += 1
            else:
                self.stored[message.message_id] = message.payload
        message.ack()


def _publish_with_retry(link: JetStreamTransport, index: int) -> None:
    """Publish message ``index`` until the stream acknowledges it (same id every time)."""
    deadline = time.monotonic() + 15.0
    while True:
        try:
            link.publish("dt/platform/v1/telemetry", f"sample {index}".encode(),
                         msg_id=f"batch-{index}")
            return
        except TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_killing_the_stream_leader_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    with LocalJetStream(tmp_path, nodes=3) as cluster:
        options = {"streams": (STREAM,), "replicas": 3, "ack_timeout_s": 2.0,
                   "redeliver_after_s": 2.0}
        producer = JetStreamTransport(cluster.url, client_id="producer", **options)
        consumers = [JetStreamTransport(cluster.url, client_id=f"consumer-{i}", **options)
                     for i in range(2)]
        downstream = Downstream()
        try:
            for consumer in consumers:  # one consumer group of two members
                consumer.subscribe("$share/lake/dt/platform/v1/telemetry", downstream,
                                   manual_ack=True)
            leader = producer._run(producer._js.stream_info(STREAM.name), 5).cluster.leader
            victim = int(leader.removeprefix("n")) - 1
            acknowledged = []
            for index in range(MESSAGES):
                if index == MESSAGES // 3:
                    cluster.kill(victim)  # SIGKILL mid-stream: the leader of the stream
                _publish_with_retry(producer, index)
                acknowledged.append(f"batch-{index}")
            # a consumer leader on the killed node moves too; what it had delivered and not
            # heard acknowledged comes again after redeliver_after_s (a busy machine: slower)
            deadline = time.monotonic() + 20.0
            while len(downstream.stored) < MESSAGES and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = sorted(set(acknowledged) - set(downstream.stored))
            assert not missing, f"{len(missing)} acknowledged messages never arrived: {missing[:5]}"
            assert len(downstream.stored) == MESSAGES
            assert downstream.stored["batch-7"] == b"sample 7"
            # the stream itself holds each message once: retried publishes were deduplicated
            assert producer.stream_messages(STREAM.name) == MESSAGES
            new_leader = producer._run(producer._js.stream_info(STREAM.name), 5).cluster.leader
            assert new_leader != leader
        finally:
            for link in (producer, *consumers):
                link.close()
