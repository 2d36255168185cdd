"""Child process of the kill -9 test: appends to a SqliteBuffer forever, logging each id whose
append returned (fsync'd), so the parent knows what the buffer acknowledged."""

from __future__ import annotations

import os
import sys
import time

from drivetrain.core.wire import MessageKind, new_message_id
from drivetrain.edge import OutgoingMessage, SqliteBuffer


def main() -> None:
    buffer_path, log_path = sys.argv[1], sys.argv[2]
    buffer = SqliteBuffer(buffer_path, max_bytes=1 << 30)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    payload = os.urandom(3000)
    while True:
        message_id = new_message_id()
        seq = buffer.next_seq(MessageKind.TELEMETRY)
        buffer.append(
            OutgoingMessage(
                message_id,
                MessageKind.TELEMETRY,
                seq,
                "dt/v1/DTVJETH88T571PG8B/telemetry",
                1,
                time.time_ns(),
                payload,
            )
        )
        os.write(log, f"{message_id} {seq}\n".encode())
        os.fsync(log)


if __name__ == "__main__":
    main()
