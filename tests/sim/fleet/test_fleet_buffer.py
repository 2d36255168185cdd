"""The fleet's shared store-and-forward database behaves, per vehicle, as the edge buffer does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from drivetrain.core.errors import StorageError
from drivetrain.core.wire import MessageKind
from drivetrain.edge import (
    AgentState,
    DesiredStateVersion,
    DownlinkMemory,
    InstalledCampaigns,
    MemoryBuffer,
    OutgoingMessage,
)
from drivetrain.sim.fleet.buffer import FleetBufferStore

A, B = "DTESU77A6SD000000", "DTUCH50A3SD000001"


def _message(
    n: int, *, priority: int = 5, size: int = 100, kind: MessageKind = MessageKind.TELEMETRY
) -> OutgoingMessage:
    return OutgoingMessage(
        f"{n:032x}", kind, n, f"dt/v1/x/{n}", priority, n, bytes([n % 256]) * size
    )


def test_each_vehicle_sees_only_its_own_messages_in_append_order(tmp_path: Path) -> None:
    store = FleetBufferStore(tmp_path / "b.sqlite")
    a, b = store.buffer(A), store.buffer(B)
    for n in range(1, 7):
        (a if n % 2 else b).append(_message(n))
    assert [m.message_id for m in a.pending()] == [f"{n:032x}" for n in (1, 3, 5)]
    assert [m.message_id for m in b.pending()] == [f"{n:032x}" for n in (2, 4, 6)]
    first = a.pending()[0]
    assert [m.position for m in a.pending(after_position=first.position)] == [
        m.position for m in a.pending()[1:]
    ]
    assert a.stats().messages == 3 and a.stats().bytes == 300


def test_removal_frees_a_vehicles_messages_and_ignores_another_vehicles_positions(
    tmp_path: Path,
) -> None:
    store = FleetBufferStore(tmp_path / "b.sqlite")
    a, b = store.buffer(A), store.buffer(B)
    a.append(_message(1))
    b.append(_message(2))
    b_position = b.pending()[0].position
    assert a.remove([b_position]) == 0
    assert a.remove([m.position for m in a.pending()]) == 1
    assert a.pending() == [] and a.stats().messages == 0 and b.stats().messages == 1


def test_sequence_numbers_state_and_messages_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    store = FleetBufferStore(path)
    a = store.buffer(A)
    a.append(_message(7), state=[DownlinkMemory(("x",))])
    store.close()
    again = FleetBufferStore(path).buffer(A)
    assert again.next_seq(MessageKind.TELEMETRY) == 8
    assert again.next_seq(MessageKind.ACK) == 0
    assert again.load_state().downlink.seen_ids == ("x",)
    assert FleetBufferStore(path).buffer(B).load_state() == AgentState()
    assert [m.seq for m in again.pending()] == [7]
    assert FleetBufferStore(path).buffer(B).pending() == []


def test_eviction_per_vehicle_by_priority_then_age_matches_the_memory_buffer(
    tmp_path: Path,
) -> None:
    store = FleetBufferStore(tmp_path / "b.sqlite", max_bytes_per_vehicle=350)
    shared, reference = store.buffer(A), MemoryBuffer(max_bytes=350)
    other = store.buffer(B)
    other.append(_message(99))
    results = []
    for n, priority in ((1, 5), (2, 1), (3, 5), (4, 9), (5, 5)):
        got = shared.append(_message(n, priority=priority))
        want = reference.append(_message(n, priority=priority))
        results.append((got.stored, [e.message_id for e in got.evicted]))
        assert (want.stored, [e.message_id for e in want.evicted]) == results[-1]
    assert [m.message_id for m in shared.pending()] == [m.message_id for m in reference.pending()]
    stats = shared.stats()
    assert stats.evicted_messages == 2 and stats.evicted_bytes == 200
    assert other.stats().messages == 1 and other.stats().evicted_messages == 0


def test_a_duplicate_message_id_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    a = FleetBufferStore(tmp_path / "b.sqlite").buffer(A)
    a.append(_message(1))
    with pytest.raises(StorageError, match=f"{1:032x}"):
        a.append(_message(1))
    assert a.stats().messages == 1 and a.next_seq(MessageKind.TELEMETRY) == 2


def test_a_buffer_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "b.sqlite"
    sqlite3.connect(path).execute("PRAGMA user_version = 9").connection.close()
    with pytest.raises(StorageError, match="schema version 9"):
        FleetBufferStore(path)


# The fleet buffer's schema version 1, as the simulator created it before typed state.
_FLEET_V1 = """
CREATE TABLE messages(position INTEGER PRIMARY KEY AUTOINCREMENT, vehicle TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE, kind INTEGER NOT NULL, seq INTEGER NOT NULL,
    topic TEXT NOT NULL, priority INTEGER NOT NULL, created_ns INTEGER NOT NULL,
    size INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE INDEX messages_vehicle ON messages(vehicle, position);
CREATE INDEX messages_eviction ON messages(vehicle, priority, position);
CREATE TABLE counters(vehicle TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
                      PRIMARY KEY(vehicle, key));
CREATE TABLE state(vehicle TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                   PRIMARY KEY(vehicle, key));
PRAGMA user_version = 1;
"""


def test_fleet_buffer_of_the_previous_runner_keeps_each_vehicles_state(tmp_path: Path) -> None:
    path = tmp_path / "fleet.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_FLEET_V1)
        db.executemany(
            "INSERT INTO state VALUES (?, ?, ?)",
            [
                ("A", "desired_version", "3"),
                ("A", "campaign_versions", '{"x": 5}'),
                ("B", "downlink", '{"seen_ids": ["m1"], "last_sent_ns": {}}'),
            ],
        )
    store = FleetBufferStore(path)
    try:
        a, b = store.buffer("A").load_state(), store.buffer("B").load_state()
    finally:
        store.close()
    assert a == AgentState(
        campaigns=InstalledCampaigns((), {"x": 5}), desired=DesiredStateVersion(3)
    )
    assert b == AgentState(downlink=DownlinkMemory(("m1",)))
