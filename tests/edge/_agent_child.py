"""Child process of the agent kill -9 test: an edge agent streaming through a real broker.

It ticks every 20 ms with a fresh Vehicle.Speed sample (the value counts up across restarts)
and, for every telemetry batch whose buffer append returned, writes the batch id to the log
and fsyncs it — what the buffer acknowledged. The parent SIGKILLs it at random moments.

usage: _agent_child.py BUFFER LOG BROKER_URL VIN [drain]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge_testkit import make_identity

from drivetrain.core.transport import MqttTransport
from drivetrain.core.wire import MessageKind
from drivetrain.edge import (
    AgentConfig,
    AppendResult,
    Campaign,
    EdgeAgent,
    OutgoingMessage,
    Samples,
    SqliteBuffer,
    StateRecord,
)

SPEED = "Vehicle.Speed"


class LoggingBuffer(SqliteBuffer):
    """A SqliteBuffer that records each telemetry batch id once its append has returned."""

    def __init__(self, path: str, log_path: str) -> None:
        super().__init__(path)
        self._log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(
        self, message: OutgoingMessage, *, state: Sequence[StateRecord] = ()
    ) -> AppendResult:
        result = super().append(message, state=state)
        if message.kind is MessageKind.TELEMETRY:
            os.write(self._log, f"{message.message_id}\n".encode())
            os.fsync(self._log)
        return result


def main() -> None:
    buffer_path, log_path, url, vin = sys.argv[1:5]
    drain = len(sys.argv) > 5 and sys.argv[5] == "drain"
    identity = make_identity(vin)
    transport = MqttTransport(
        url,
        client_id=vin,
        session_expiry_s=600,
        reconnect_min_delay_s=0.1,
        reconnect_max_delay_s=0.5,
    )
    buffer = LoggingBuffer(buffer_path, log_path)
    agent = EdgeAgent(identity, transport, buffer, config=AgentConfig(batch_interval_s=0.1))
    if not agent.engine.campaigns:
        campaign = {"id": "every-sample", "version": 1, "signals": [SPEED], "period_ms": 10}
        agent.install_local([Campaign.from_dict(campaign, agent.catalog)])
    agent.start()
    # The sample value counts up across restarts: kept beside the buffer, written atomically.
    counter_file = Path(buffer_path + ".counter")
    counter = int(counter_file.read_text()) if counter_file.exists() else 0
    while not drain:
        counter += 1
        now = time.time_ns()
        agent.tick(now, samples=Samples.from_values({SPEED: float(counter)}, now))
        if counter % 25 == 0:
            counter_file.with_suffix(".tmp").write_text(str(counter))
            counter_file.with_suffix(".tmp").replace(counter_file)
        time.sleep(0.02)
    agent.flush()
    while buffer.stats().messages:  # drain mode: send everything, then exit
        agent.uplink.pump(time.time())
        time.sleep(0.02)
    transport.close()


if __name__ == "__main__":
    main()
