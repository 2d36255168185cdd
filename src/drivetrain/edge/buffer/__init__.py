"""The store-and-forward buffer: sealed messages wait here until the cloud has them.

``base`` holds the message types, the ``Buffer`` protocol and the helpers every implementation
shares (also the simulator's fleet-wide store); ``sqlite`` the buffer of a car (one SQLite
file, durable on return, with its schema migrations); ``memory`` the same behaviour in memory.
"""

from drivetrain.edge.buffer.base import (
    MESSAGE_COLUMNS,
    AppendResult,
    Buffer,
    BufferedMessage,
    BufferStats,
    Eviction,
    KindSummary,
    OutgoingMessage,
    check_message,
    message_from_row,
    select_evictions,
)
from drivetrain.edge.buffer.memory import MemoryBuffer
from drivetrain.edge.buffer.sqlite import SCHEMA_VERSION, SqliteBuffer, Synchronous, upgrade_schema

__all__ = [
    "MESSAGE_COLUMNS",
    "SCHEMA_VERSION",
    "AppendResult",
    "Buffer",
    "BufferStats",
    "BufferedMessage",
    "Eviction",
    "KindSummary",
    "MemoryBuffer",
    "OutgoingMessage",
    "SqliteBuffer",
    "Synchronous",
    "check_message",
    "message_from_row",
    "select_evictions",
    "upgrade_schema",
]
