"""``MemoryBuffer``: the ``Buffer`` behaviour in memory (tests, simulated vehicles).

The same ordering, bound and eviction as ``SqliteBuffer`` (see ``base.py``); nothing on disk,
so nothing survives the process.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind
from drivetrain.edge.buffer.base import (
    AppendResult,
    BufferedMessage,
    BufferStats,
    Eviction,
    OutgoingMessage,
    check_message,
)
from drivetrain.edge.state import AgentState, StateRecord, encode_records


class MemoryBuffer:
    """``Buffer`` in memory: the same ordering, bound and eviction, nothing on disk."""

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._messages: dict[int, BufferedMessage] = {}
        self._ids: set[str] = set()
        self._state = AgentState()
        self._seq: dict[int, int] = {}
        self._next_position = 1
        self._bytes = 0
        self._evicted_messages = 0
        self._evicted_bytes = 0
        self._lock = threading.Lock()

    def next_seq(self, kind: MessageKind) -> int:
        with self._lock:
            return self._seq.get(int(kind), 0)

    def append(
        self, message: OutgoingMessage, *, state: Sequence[StateRecord] = ()
    ) -> AppendResult:
        """See ``SqliteBuffer.append``.

        Raises:
            StorageError: the message id is already in the buffer.
        """
        check_message(message)
        encode_records(state)  # the same refusal of a non-record as the stores on disk
        with self._lock:
            if message.message_id in self._ids:
                raise StorageError(f"message {message.message_id} is already in the buffer")
            position = self._next_position
            self._next_position += 1
            self._messages[position] = BufferedMessage(
                message.message_id,
                message.kind,
                message.seq,
                message.topic,
                message.priority,
                message.created_ns,
                message.payload,
                position,
            )
            self._ids.add(message.message_id)
            self._bytes += len(message.payload)
            self._seq[int(message.kind)] = max(self._seq.get(int(message.kind), 0), message.seq + 1)
            self._state = self._state.updated(state)
            evicted: list[Eviction] = []
            if self._bytes > self.max_bytes:
                for m in sorted(self._messages.values(), key=lambda m: (m.priority, m.position)):
                    del self._messages[m.position]
                    self._ids.discard(m.message_id)
                    self._bytes -= len(m.payload)
                    evicted.append(Eviction(m.message_id, m.kind, m.priority, len(m.payload)))
                    if self._bytes <= self.max_bytes:
                        break
                self._evicted_messages += len(evicted)
                self._evicted_bytes += sum(e.size for e in evicted)
        stored = position in self._messages
        return AppendResult(position if stored else None, tuple(evicted))

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        with self._lock:  # dicts keep insertion order, which is position order
            return list(
                itertools.islice(
                    (m for p, m in self._messages.items() if p > after_position), limit
                )
            )

    def remove(self, positions: Iterable[int]) -> int:
        removed = 0
        with self._lock:
            for p in positions:
                m = self._messages.pop(int(p), None)
                if m is not None:
                    self._ids.discard(m.message_id)
                    self._bytes -= len(m.payload)
                    removed += 1
        return removed

    def load_state(self) -> AgentState:
        with self._lock:
            return self._state

    def save_state(self, records: Sequence[StateRecord]) -> None:
        encode_records(records)
        with self._lock:
            self._state = self._state.updated(records)

    def stats(self) -> BufferStats:
        with self._lock:
            return BufferStats(
                len(self._messages),
                self._bytes,
                self.max_bytes,
                self._evicted_messages,
                self._evicted_bytes,
            )

    def close(self) -> None:
        """Nothing to release."""
