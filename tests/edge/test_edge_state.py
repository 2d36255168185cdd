"""The agent's persisted state: typed records that round-trip, survive damage, and are migrated
from the key/value state that agents wrote before them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from edge_testkit import T0, CloudReceiver, CloudSigner, make_identity
from hypothesis import given
from hypothesis import strategies as st

from drivetrain.core.errors import StorageError
from drivetrain.core.transport import InProcessTransport
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import MessageKind
from drivetrain.edge import EdgeAgent, InMemoryActuator, SqliteBuffer
from drivetrain.edge.state import (
    AgentState,
    DesiredStateVersion,
    DownlinkMemory,
    InstalledCampaigns,
    StateFormatError,
    StateRecord,
    encode_record,
    records_from_legacy,
)

OLD_BUFFER = Path(__file__).parents[1] / "data" / "edge" / "buffer-v1.sqlite"
CHARGE_LIMIT = "Vehicle.Powertrain.TractionBattery.Charging.ChargeLimit"
S = 1_000_000_000
CAMPAIGN_ID, DESIRED_ID = "c" * 32, "d" * 32
OLDER = {"id": "fast", "signals": ["Vehicle.Speed"], "period_ms": 1000}

ids = st.text("0123456789abcdef", min_size=1, max_size=32)
kinds = st.integers(0, 20)
memories = st.builds(
    DownlinkMemory,
    st.lists(ids, max_size=5).map(tuple),
    st.dictionaries(kinds, st.integers(0, 2**63 - 1), max_size=3),
    st.dictionaries(kinds, ids, max_size=3),
)


@given(memories, st.integers(-1, 2**31))
def test_records_round_trip_through_their_stored_form(memory: DownlinkMemory, version: int) -> None:
    campaigns = InstalledCampaigns(({"id": "fast", "version": 2},), {"fast": 2, "old": 7})
    records: list[StateRecord] = [memory, campaigns, DesiredStateVersion(version)]
    state = AgentState.from_stored(encode_record(r) for r in records)
    assert state == AgentState(memory, campaigns, DesiredStateVersion(version))


def test_a_damaged_record_starts_empty_and_the_others_are_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = [
        ("downlink", "{not json"),
        ("campaigns", json.dumps({"campaigns": "not a list"})),
        encode_record(DesiredStateVersion(3)),
        ("written_by_a_newer_agent", "{}"),
    ]
    state = AgentState.from_stored(rows)
    assert state == AgentState(desired=DesiredStateVersion(3))
    assert "campaigns.campaigns: expected a list" in caplog.text
    assert "'written_by_a_newer_agent' is not known" in caplog.text


def test_a_record_field_of_the_wrong_type_is_named() -> None:
    with pytest.raises(StateFormatError, match=r"desired_state\.version: expected an integer"):
        DesiredStateVersion.from_dict({"version": True})
    with pytest.raises(StateFormatError, match=r"downlink\.last_sent_ns\.5: expected an integer"):
        DownlinkMemory.from_dict({"last_sent_ns": {"5": [1]}})


def test_legacy_key_value_state_becomes_typed_records() -> None:
    legacy = {
        "downlink": json.dumps(
            {"seen_ids": ["a"], "last_sent_ns": {"5": 10}, "last_id": {"5": "a"}}
        ),
        "campaigns": json.dumps([{"id": "fast", "version": 2}]),
        "campaign_versions": json.dumps({"fast": 2}),
        "desired_version": "4",
        "test.counter": "25",  # never written by an agent: dropped
    }
    assert AgentState().updated(records_from_legacy(legacy)) == AgentState(
        DownlinkMemory(("a",), {5: 10}, {5: "a"}),
        InstalledCampaigns(({"id": "fast", "version": 2},), {"fast": 2}),
        DesiredStateVersion(4),
    )
    assert records_from_legacy({"desired_version": "x", "campaigns": "[oops"}) == [
        InstalledCampaigns()
    ]


def test_buffer_written_by_the_previous_agent_keeps_its_state_and_messages(
    tmp_path: Path,
) -> None:
    path = tmp_path / "buffer.db"
    shutil.copy(OLD_BUFFER, path)
    with sqlite3.connect(path) as db:
        pending_before = [row[0] for row in db.execute("SELECT message_id FROM messages")]
    bus = InProcessTransport()
    identity = make_identity()
    receiver = CloudReceiver({identity.vin: identity.signing_key.verify_key})
    bus.subscribe("dt/v1/+/#", receiver.handle)
    catalog = builtin_catalog()
    actuator = InMemoryActuator(catalog, {CHARGE_LIMIT: 90})
    agent = EdgeAgent(identity, bus, SqliteBuffer(path), catalog=catalog, actuator=actuator)
    try:
        assert agent.desired_version == 4
        [campaign] = agent.engine.campaigns
        assert (campaign.id, campaign.version, campaign.priority) == ("fast", 2, 6)
        assert [t.name for t in campaign.triggers] == ["hard-brake"]
        assert list(agent.guard.state.seen_ids) == [CAMPAIGN_ID, DESIRED_ID]
        assert [m.message_id for m in agent.buffer.pending()] == pending_before != []
        agent.start()
        cloud = CloudSigner()
        now = T0 + 20 * S
        # The campaign's message again is refused; an older campaign version is rejected.
        bus.publish(
            *cloud.seal(
                MessageKind.CAMPAIGN, identity.vin, {**OLDER, "version": 2}, sent_ns=T0,
                message_id=CAMPAIGN_ID,
            )
        )  # fmt: skip
        bus.publish(
            *cloud.seal(MessageKind.CAMPAIGN, identity.vin, {**OLDER, "version": 1}, sent_ns=now)
        )
        bus.drain()
        agent.tick(now)
        bus.drain()
        assert agent.stats().downlink_refused == {"duplicate": 1}
        [ack] = receiver.acks()
        assert (ack.status, ack.ref_kind) == ("rejected", "campaign") and "not newer" in ack.detail
        assert pending_before[0] in {m.message_id for m in receiver.of(MessageKind.TELEMETRY)}
    finally:
        agent.buffer.close()
        bus.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "state" not in tables and "agent_state" in tables


def test_buffer_of_an_unknown_schema_version_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "buffer.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(StorageError, match="schema version 9; this agent reads 2"):
        SqliteBuffer(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 9
