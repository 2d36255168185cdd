"""The store-and-forward buffer: durable, ordered, bounded with counted eviction."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind, new_message_id
from drivetrain.edge import (
    AgentState,
    Buffer,
    DesiredStateVersion,
    DownlinkMemory,
    InstalledCampaigns,
    MemoryBuffer,
    OutgoingMessage,
    SqliteBuffer,
)

TOPIC = "dt/v1/DTVJETH88T571PG8B/telemetry"
WRITER = Path(__file__).with_name("_buffer_writer.py")


def message(
    priority: int = 1, size: int = 100, kind: MessageKind = MessageKind.TELEMETRY, seq: int = 0
) -> OutgoingMessage:
    return OutgoingMessage(
        new_message_id(), kind, seq, TOPIC, priority, time.time_ns(), os.urandom(size)
    )


@pytest.fixture(params=["sqlite", "memory"])
def make_buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], Buffer]:
    def make(max_bytes: int) -> Buffer:
        if request.param == "sqlite":
            return SqliteBuffer(tmp_path / "buffer.db", max_bytes=max_bytes)
        return MemoryBuffer(max_bytes=max_bytes)

    return make


def test_messages_come_back_in_append_order_until_removed(
    make_buffer: Callable[[int], Buffer],
) -> None:
    buffer = make_buffer(10_000)
    sent = [message() for _ in range(5)]
    positions = [buffer.append(m).position for m in sent]
    assert positions == sorted(positions)
    pending = buffer.pending()
    assert [m.message_id for m in pending] == [m.message_id for m in sent]
    assert pending[0].payload == sent[0].payload and pending[0].topic == TOPIC
    assert [m.message_id for m in buffer.pending(after_position=pending[1].position, limit=2)] == [
        sent[2].message_id,
        sent[3].message_id,
    ]
    assert buffer.remove([pending[0].position, pending[2].position, 999]) == 2
    assert [m.message_id for m in buffer.pending()] == [
        sent[1].message_id,
        sent[3].message_id,
        sent[4].message_id,
    ]
    assert buffer.stats().messages == 3 and buffer.stats().bytes == 300


def test_eviction_drops_lowest_priority_then_oldest_and_counts_it(
    make_buffer: Callable[[int], Buffer],
) -> None:
    buffer = make_buffer(1000)
    low_old, high, low_new = (
        message(priority=1, size=400),
        message(priority=5, size=400),
        message(priority=1, size=150),
    )
    for m in (low_old, high, low_new):
        assert buffer.append(m).evicted == ()
    result = buffer.append(message(priority=3, size=300))
    assert [e.message_id for e in result.evicted] == [low_old.message_id]
    assert result.stored
    # A message less important than everything held is itself the one evicted.
    result = buffer.append(message(priority=0, size=400))
    assert not result.stored and [e.priority for e in result.evicted] == [0]
    # One more of priority 3 pushes out the remaining priority-1 message first.
    result = buffer.append(message(priority=3, size=200))
    assert [e.message_id for e in result.evicted] == [low_new.message_id]
    stats = buffer.stats()
    assert (stats.evicted_messages, stats.evicted_bytes) == (3, 950)
    assert stats.bytes <= 1000
    assert {m.priority for m in buffer.pending()} == {5, 3}


def test_sequence_numbers_continue_per_kind(make_buffer: Callable[[int], Buffer]) -> None:
    buffer = make_buffer(10_000)
    assert buffer.next_seq(MessageKind.TELEMETRY) == 0
    buffer.append(message(seq=0))
    buffer.append(message(seq=1))
    buffer.append(message(kind=MessageKind.ACK, seq=0))
    assert buffer.next_seq(MessageKind.TELEMETRY) == 2 and buffer.next_seq(MessageKind.ACK) == 1


def test_state_is_stored_with_the_message(make_buffer: Callable[[int], Buffer]) -> None:
    buffer = make_buffer(10_000)
    assert buffer.load_state() == AgentState()
    buffer.append(message(kind=MessageKind.ACK), state=[DownlinkMemory(("seen-1",))])
    assert buffer.load_state().downlink.seen_ids == ("seen-1",)
    buffer.save_state([DownlinkMemory(("seen-2",)), DesiredStateVersion(4)])
    state = buffer.load_state()
    assert state.downlink.seen_ids == ("seen-2",) and state.desired.version == 4
    assert state.campaigns == InstalledCampaigns()


def test_something_that_is_not_a_state_record_is_refused(
    make_buffer: Callable[[int], Buffer],
) -> None:
    buffer = make_buffer(10_000)
    with pytest.raises(TypeError, match="not an agent state record"):
        buffer.append(message(), state=[{"downlink": "x"}])  # type: ignore[list-item]
    assert buffer.stats().messages == 0


def test_everything_survives_a_reopen_and_positions_are_never_reused(tmp_path: Path) -> None:
    buffer = SqliteBuffer(tmp_path / "b.db", max_bytes=250)
    for seq in range(3):
        buffer.append(message(seq=seq))
    last = buffer.pending()[-1].position
    buffer.remove([last])
    buffer.save_state([DesiredStateVersion(7)])
    buffer.close()
    again = SqliteBuffer(tmp_path / "b.db", max_bytes=250)
    assert again.stats().messages == 1 and again.stats().evicted_messages == 1
    assert again.next_seq(MessageKind.TELEMETRY) == 3
    assert again.load_state().desired == DesiredStateVersion(7)
    assert again.append(message(seq=3)).position == last + 1


def test_duplicate_message_id_is_refused(make_buffer: Callable[[int], Buffer]) -> None:
    buffer = make_buffer(10_000)
    m = message()
    buffer.append(m)
    with pytest.raises(StorageError, match=m.message_id):
        buffer.append(m)
    assert buffer.stats().messages == 1


def test_a_file_that_is_not_a_buffer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-buffer.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not-a-buffer.db"):
        SqliteBuffer(path)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("PRAGMA user_version = 7").close()
    with pytest.raises(StorageError, match="schema version 7"):
        SqliteBuffer(other)


def test_buffer_is_durable_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    buffer = SqliteBuffer(tmp_path / "b.db")
    assert buffer._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert buffer._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


@pytest.mark.slow
def test_buffer_survives_kill_9_mid_write_losing_nothing_acknowledged(tmp_path: Path) -> None:
    """A writer is SIGKILLed at random moments; every append that returned is still there."""
    db, log = tmp_path / "buffer.db", tmp_path / "acknowledged.log"
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(6):
        child = subprocess.Popen([sys.executable, str(WRITER), str(db), str(log)], env=env)
        deadline = time.monotonic() + 20
        start = log.stat().st_size if log.exists() else 0
        while (not log.exists() or log.stat().st_size == start) and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this run has appended at least once
        time.sleep(rng.uniform(0.05, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
    acknowledged = [line.split() for line in log.read_text().splitlines()]
    buffer = SqliteBuffer(db, max_bytes=1 << 30)
    stored = buffer.pending(limit=1_000_000)
    stored_ids = [m.message_id for m in stored]
    assert {i for i, _ in acknowledged} <= set(stored_ids)
    assert len(set(stored_ids)) == len(stored_ids)
    # Telemetry sequence numbers increase in append order.
    seqs = [m.seq for m in stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert buffer._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(acknowledged) > 20
