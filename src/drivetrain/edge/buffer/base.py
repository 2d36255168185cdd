"""What every store-and-forward buffer shares: the message types, the ``Buffer`` protocol and
the helpers its implementations use.

The store-and-forward buffer: sealed messages wait on disk until the cloud has them.

Everything the vehicle sends (telemetry batches, events, acknowledgements) is sealed — a signed
envelope whose message id is the batch id — and appended here *before* it is sent. The uplink
sends messages in append order and removes each one only after the transport confirmed it (the
broker's PUBACK for MQTT QoS 1). A message re-sent after a reconnect or a crash is the same
bytes with the same id, so the cloud drops the duplicate.

Guarantees of ``SqliteBuffer`` (``sqlite.py``):

* **Durable when ``append`` returns.** SQLite in WAL mode with ``synchronous=FULL``: the commit
  is fsynced before ``append`` returns, so a message survives a crash of the process (kill -9)
  and a power loss. (``synchronous="NORMAL"`` is offered for simulated fleets, where hundreds
  of agents share one disk and power loss is not a concern: it survives process crashes but
  may lose the last commits on power loss.)
* **Bounded by bytes, eviction by priority then age.** When the payloads exceed ``max_bytes``
  the lowest-priority messages go first, oldest first within a priority — possibly the one
  just appended, when it is the least important. Every eviction is returned to the caller and
  counted (``stats()``), never silent.
* **Ordered.** ``pending`` returns messages by position (append order); positions are never
  reused (``AUTOINCREMENT``), so a position read before a crash still means the same message.

The buffer also keeps the agent's state (typed records, ``edge.state``), committed in the same
transaction as a message when given together (``append(..., state=[...])``) — e.g. the
downlink memory that holds a message's id as seen, with the acknowledgement that reports it.

``MemoryBuffer`` (``memory.py``) has the same behaviour without a disk (tests, simulated fleets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from drivetrain.core.wire import MessageKind
from drivetrain.edge.state import AgentState, StateRecord


@dataclass(frozen=True)
class OutgoingMessage:
    """A sealed message to append: its envelope bytes and how to send and evict it."""

    message_id: str
    kind: MessageKind
    seq: int
    topic: str
    priority: int
    created_ns: int
    payload: bytes = field(repr=False)


@dataclass(frozen=True)
class BufferedMessage(OutgoingMessage):
    """A message in the buffer: the appended message and its ``position``, which orders
    uploads."""

    position: int


@dataclass(frozen=True)
class Eviction:
    """A message dropped to keep the buffer within its bound."""

    message_id: str
    kind: MessageKind
    priority: int
    size: int


@dataclass(frozen=True)
class AppendResult:
    """What ``append`` did: the new message's position (None when it was itself evicted) and
    every message evicted to make room."""

    position: int | None
    evicted: tuple[Eviction, ...] = ()

    @property
    def stored(self) -> bool:
        return self.position is not None


@dataclass(frozen=True)
class KindSummary:
    """Messages of one kind waiting in a buffer."""

    kind: MessageKind
    messages: int
    bytes: int
    oldest_ns: int
    newest_ns: int


@dataclass(frozen=True)
class BufferStats:
    """Counters of a buffer (the eviction counters survive restarts)."""

    messages: int
    bytes: int
    max_bytes: int
    evicted_messages: int
    evicted_bytes: int


class Buffer(Protocol):
    """What the agent and uplink need from a store-and-forward buffer."""

    def next_seq(self, kind: MessageKind) -> int:
        """The sequence number the next appended message of ``kind`` must carry."""
        ...

    def append(
        self, message: OutgoingMessage, *, state: Sequence[StateRecord] = ()
    ) -> AppendResult:
        """Store ``message`` (and the ``state`` records, atomically); durable on return."""
        ...

    def pending(self, after_position: int = 0, limit: int = 100) -> list[BufferedMessage]:
        """Up to ``limit`` messages with a position above ``after_position``, in order."""
        ...

    def remove(self, positions: Iterable[int]) -> int:
        """Delete confirmed messages; returns how many were still there."""
        ...

    def load_state(self) -> AgentState:
        """The agent state stored so far (defaults for records never stored)."""
        ...

    def save_state(self, records: Sequence[StateRecord]) -> None:
        """Replace the stored records of the given types; durable on return."""
        ...

    def stats(self) -> BufferStats: ...

    def close(self) -> None: ...


def check_message(message: OutgoingMessage) -> None:
    """Refuse a message no buffer may store.

    Raises:
        ValueError: a negative ``seq`` or an empty payload.
    """
    if message.seq < 0:
        raise ValueError(f"seq {message.seq} is negative")
    if not message.payload:
        raise ValueError(f"message {message.message_id} has an empty payload")


# The columns ``message_from_row`` reads, in its order (SQLite buffers select them for pending).
MESSAGE_COLUMNS: Final = "position, message_id, kind, seq, topic, priority, created_ns, payload"


def message_from_row(row: tuple[int, str, int, int, str, int, int, bytes]) -> BufferedMessage:
    """A ``BufferedMessage`` from a row of ``MESSAGE_COLUMNS``."""
    position, message_id, kind, seq, topic, priority, created_ns, payload = row
    return BufferedMessage(
        message_id, MessageKind(kind), seq, topic, priority, created_ns, bytes(payload), position
    )


def select_evictions(
    rows: Iterable[tuple[int, str, int, int, int]], excess: int
) -> tuple[list[tuple[int, Eviction]], int]:
    """The first rows of (position, message_id, kind, priority, size), taken in eviction order
    (priority, then position), whose sizes add up to at least ``excess`` bytes.

    Returns:
        ``[(position, Eviction)]`` and the bytes they free (both empty/0 when ``excess <= 0``).
    """
    victims: list[tuple[int, Eviction]] = []
    freed = 0
    if excess <= 0:
        return victims, freed
    for position, message_id, kind, priority, size in rows:
        victims.append((position, Eviction(message_id, MessageKind(kind), priority, size)))
        freed += size
        if freed >= excess:
            break
    return victims, freed
