"""Attacks and bad payloads at the door: each is refused with its own dead-letter reason, the
raw bytes are kept, nothing of it reaches the lake, and a re-sent copy is recorded once."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_helpers import NOW_NS, SECOND, SOC, Fleet, telemetry

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import MESSAGE_REASONS, IngestPipeline, MemoryLake, RawMessage
from drivetrain.cloud.ingest.envelopes import RejectedMessage, open_message
from drivetrain.cloud.ingest.service import dead_letter_payload, list_dead_letters
from drivetrain.cloud.ingest.validation import PathTable
from drivetrain.core.crypto import SigningKey
from drivetrain.core.transport import vehicle_topic
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import (
    TELEMETRY_SCHEMA,
    MessageKind,
    VehicleEvent,
    events_to_dict,
    seal,
    seal_json,
)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _bad_index_body() -> bytes:
    """A telemetry table whose path index points past its one-entry dictionary."""
    path = pa.DictionaryArray.from_arrays(pa.array([0, 7], pa.int16()), pa.array([SOC]), safe=False)
    ts = pa.array(np.array([NOW_NS, NOW_NS]), pa.timestamp("ns", tz="UTC"))
    table = pa.Table.from_arrays(
        [path, ts, pa.array([1.0, 2.0]), pa.nulls(2, pa.utf8())], schema=TELEMETRY_SCHEMA
    )
    return _ipc(table)


def _case(name: str, fleet: Fleet) -> tuple[RawMessage, str]:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    good = telemetry(vin, key, [(SOC, NOW_NS, 50.0)])
    topic = good.topic
    if name == "truncated":
        return RawMessage(topic, good.payload[: len(good.payload) // 2]), "malformed"
    if name == "garbled":
        return RawMessage(topic, os.urandom(300)), "malformed"
    if name == "empty":
        return RawMessage(topic, b""), "malformed"
    if name == "signed_by_another_vehicle":
        forged = telemetry(vin, fleet.key("eu2"), [(SOC, NOW_NS, 50.0)])
        return forged, "bad_signature"
    if name == "tampered_value":
        data = bytearray(good.payload)
        data[-80] ^= 0x01  # inside the body, before the end-of-stream marker
        return RawMessage(topic, bytes(data)), "bad_signature"
    if name == "forged_key_id":
        attacker = SigningKey.generate()
        signed = telemetry(vin, attacker, [(SOC, NOW_NS, 1.0)]).payload
        # name the victim's key id in the header, keep the attacker's signature
        forged = signed.replace(attacker.key_id.encode(), key.key_id.encode())
        return RawMessage(topic, forged), "bad_signature"
    if name == "unknown_vehicle":
        return telemetry(
            "DTV00000000000000", SigningKey.generate(), [(SOC, NOW_NS, 1.0)]
        ), "unknown_vehicle"
    if name == "on_another_vehicles_topic":
        return RawMessage(vehicle_topic(fleet.vin("eu2"), "telemetry"), good.payload), "malformed"
    if name == "telemetry_on_events_channel":
        return RawMessage(vehicle_topic(vin, "events"), good.payload), "malformed"
    if name == "downlink_kind_sent_up":
        payload = seal_json(MessageKind.COMMAND, vin, {"name": "unlock"}, key=key, seq=1)
        return RawMessage(vehicle_topic(vin, "telemetry"), payload), "malformed"
    if name == "dictionary_index_out_of_range":
        payload = seal(
            MessageKind.TELEMETRY, vin, _bad_index_body(), body_encoding="arrow-ipc", key=key, seq=1
        )
        return RawMessage(topic, payload), "malformed"
    if name == "json_body_for_telemetry":
        payload = seal(MessageKind.TELEMETRY, vin, b"{}", body_encoding="json", key=key, seq=1)
        return RawMessage(topic, payload), "malformed"
    if name == "event_type_too_long":
        events = events_to_dict([VehicleEvent("x" * 500, NOW_NS)])
        payload = seal_json(MessageKind.EVENTS, vin, events, key=key, seq=1)
        return RawMessage(vehicle_topic(vin, "events"), payload), "malformed"
    if name == "unknown_path":
        return telemetry(vin, key, [("Vehicle.Teleport.Target", NOW_NS, 1.0)]), "unknown_path"
    if name == "wrong_type":
        return telemetry(vin, key, [(SOC, NOW_NS, None, "full")]), "wrong_type"
    if name == "out_of_range":
        return telemetry(vin, key, [(SOC, NOW_NS, 101.0)]), "out_of_range"
    if name == "timestamp_from_1970":
        return telemetry(vin, key, [(SOC, 12 * SECOND, 50.0)]), "timestamp_too_old"
    if name == "timestamp_in_the_future":
        return telemetry(vin, key, [(SOC, NOW_NS + 86_400 * SECOND, 50.0)]), "timestamp_in_future"
    raise AssertionError(name)


CASES = [
    "truncated",
    "garbled",
    "empty",
    "signed_by_another_vehicle",
    "tampered_value",
    "forged_key_id",
    "unknown_vehicle",
    "on_another_vehicles_topic",
    "telemetry_on_events_channel",
    "downlink_kind_sent_up",
    "dictionary_index_out_of_range",
    "json_body_for_telemetry",
    "event_type_too_long",
    "unknown_path",
    "wrong_type",
    "out_of_range",
    "timestamp_from_1970",
    "timestamp_in_the_future",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_payload_gets_its_specific_dead_letter_reason_and_nothing_is_stored(
    case: str, pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    message, reason = _case(case, fleet)
    report = pipeline.process([message])
    assert lake.rows() is None
    with database.session() as session:
        letters = list_dead_letters(session, tenant=None)
        assert [d.reason for d in letters] == [reason], [d.detail for d in letters]
        letter = letters[0]
        if letter.level == "message":  # the whole payload is kept, byte for byte
            assert (
                dead_letter_payload(session, letter.dead_letter_id, tenant=None) == message.payload
            )
            assert report.results[0].status == "refused"
        else:
            assert letter.sample_count == 1
    assert letter.detail


def test_the_same_bad_payload_sent_again_is_dead_lettered_once(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    for case in ("truncated", "out_of_range"):
        message, _ = _case(case, fleet)
        pipeline.process([message])
        pipeline.process([message])
    with database.session() as session:
        assert sorted(d.reason for d in list_dead_letters(session, tenant=None)) == [
            "malformed",
            "out_of_range",
        ]


def test_a_flood_of_random_paths_does_not_grow_the_path_table_without_bound(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet
) -> None:
    import drivetrain.cloud.ingest.pipeline as pipeline_module

    pipeline = make_pipeline()
    limit = len(pipeline.catalog) + pipeline_module.MAX_UNKNOWN_PATHS
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    for round_ in range(4):
        samples = [(f"Vehicle.Junk{round_}x{i}", NOW_NS, 1.0) for i in range(5000)]
        pipeline.process([telemetry(vin, key, samples, seq=round_ + 1)])
    assert len(pipeline.paths) <= limit + 5000


def test_unknown_senders_dead_letters_are_unattributed_and_hidden_from_tenants(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    message, _ = _case("unknown_vehicle", fleet)
    pipeline.process([message])
    with database.session() as session:
        assert list_dead_letters(session, tenant="acme") == []
        (letter,) = list_dead_letters(session, tenant=None)
    assert letter.tenant is None and letter.vin == "DTV00000000000000"


def test_a_forged_message_is_attributed_to_the_claimed_tenant_but_not_trusted(
    pipeline: IngestPipeline, fleet: Fleet, database: Database, lake: MemoryLake
) -> None:
    message, _ = _case("signed_by_another_vehicle", fleet)
    pipeline.process([message])
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert letter.reason == "bad_signature" and letter.vin == fleet.vin("eu1")
    assert lake.rows() is None


# --- property: no altered byte is ever accepted, and opening never raises ------------------
def _opened_or_refused(payload: bytes, topic: str, vehicle: Vehicle) -> str:
    paths = PathTable(builtin_catalog())
    opened = open_message(RawMessage(topic, payload), {vehicle.vin: vehicle}.get, paths)
    return opened.reason if isinstance(opened, RejectedMessage) else "opened"


_KEY = SigningKey.from_seed(b"p" * 32)
_VIN = "DTVPR0PERTY000001"
_VEHICLE = Vehicle(
    _VIN,
    "acme",
    "compact-bev",
    "EU",
    None,
    _KEY.verify_key,
    "active",
    datetime(2026, 1, 1, tzinfo=UTC),
)
_GOOD = telemetry(_VIN, _KEY, [(SOC, NOW_NS, 50.0), (SOC, NOW_NS + 1, 51.0)])


def test_the_unaltered_payload_opens() -> None:
    assert _opened_or_refused(_GOOD.payload, _GOOD.topic, _VEHICLE) == "opened"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_altered_byte_is_refused_at_message_level(data: st.DataObject) -> None:
    payload = bytearray(_GOOD.payload)
    position = data.draw(st.integers(0, len(payload) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    payload[position] ^= flip
    reason = _opened_or_refused(bytes(payload), _GOOD.topic, _VEHICLE)
    assert reason in MESSAGE_REASONS


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_and_are_malformed(payload: bytes) -> None:
    assert _opened_or_refused(payload, _GOOD.topic, _VEHICLE) == "malformed"


@settings(max_examples=100, deadline=None)
@given(st.integers(1, len(_GOOD.payload) - 1))
def test_every_truncation_is_refused(length: int) -> None:
    assert _opened_or_refused(_GOOD.payload[:length], _GOOD.topic, _VEHICLE) in (
        "malformed",
        "bad_signature",
    )
