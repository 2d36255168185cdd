"""Hostile bytes at the door, one named test per attack: unsigned poison (deep nesting, huge
integers), signed poison (invalid UTF-8, lone surrogates, NUL), decompression bombs, oversized
garbage and dead-letter floods. Each is refused with its reason, changes nothing, and an ingest
worker fed all of them keeps ingesting the valid messages behind them — on the in-process bus
and through a real Mosquitto."""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from ingest_helpers import NOW_NS, SOC, SPEED, Fleet, telemetry, wall_clock_ns

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import (
    IngestPipeline,
    IngestWorker,
    MemoryLake,
    MemoryReportedState,
    RawMessage,
    dead_letter_payload,
    ingest_stats,
    list_dead_letters,
)
from drivetrain.cloud.ingest.limits import IngestLimits
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.privacy import set_consent
from drivetrain.core.transport import InProcessTransport, Transport, vehicle_topic
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.testing import PrivateBroker
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES
from drivetrain.core.wire import (
    IpcLimits,
    MessageKind,
    encode_samples,
    samples_table,
    seal,
)

TEXT_SIGNAL = "Vehicle.Powertrain.TractionBattery.Charging.EvseId"  # string, technical


def _raw_envelope(header: bytes, body: bytes, kind: MessageKind = MessageKind.TELEMETRY) -> bytes:
    """An envelope with a header of our choosing (unsigned: 64 zero bytes of signature)."""
    return struct.pack(">3sBBBI", b"DTW", 1, int(kind), 0, len(header)) + header + body + bytes(64)


def _ipc(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _utf8(raw: bytes) -> pa.Array:
    offsets = pa.py_buffer(np.array([0, len(raw)], np.int32).tobytes())
    return pa.Array.from_buffers(pa.utf8(), 1, [None, offsets, pa.py_buffer(raw)])


def _telemetry_body(path: pa.Array, text: pa.Array, ts: int) -> bytes:
    table = pa.Table.from_arrays(
        [
            pa.DictionaryArray.from_arrays(pa.array([0], pa.int16()), path),
            pa.array([ts], pa.timestamp("ns", tz="UTC")),
            pa.array([None], pa.float64()),
            text,
        ],
        names=["path", "ts", "value", "text"],
    )
    return _ipc(table)


def _attacks(fleet: Fleet, now_ns: int) -> dict[str, tuple[RawMessage, str]]:
    """Every attack of this file: name -> (message, the dead-letter reason it must get)."""
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    topic = vehicle_topic(vin, "telemetry")
    events_topic = vehicle_topic(vin, "events")

    def signed(body: bytes, kind: MessageKind = MessageKind.TELEMETRY) -> bytes:
        encoding = "arrow-ipc" if kind == MessageKind.TELEMETRY else "json"
        return seal(kind, vin, body, body_encoding=encoding, key=key, seq=1)  # type: ignore[arg-type]

    def event_body(event_type: str) -> bytes:
        return signed(
            (b'{"events":[{"type":"%s","ts_ns":%d}]}' % (event_type.encode(), now_ns)),
            MessageKind.EVENTS,
        )

    bomb = samples_table(["Vehicle.Speed"], np.zeros(200_000, np.int16), np.full(200_000, now_ns),
                         np.zeros(200_000))  # fmt: skip
    return {
        "header_of_16000_brackets": (RawMessage(topic, _raw_envelope(b"[" * 16_000, b"")), "malformed"),
        "header_with_a_4300_digit_integer": (
            RawMessage(topic, _raw_envelope(b'{"vehicle":"%s","seq":%s}' % (vin.encode(), b"9" * 4_300), b"")),
            "malformed",
        ),
        "header_with_a_lone_surrogate_vin": (
            RawMessage(topic, _raw_envelope(b'{"vehicle":"\\ud800"}', b"")), "malformed"
        ),
        "unsigned_events_body_nested_16000_deep": (
            RawMessage(events_topic, signed(b'{"events":' + b"[" * 16_000 + b"]" * 16_000 + b"}",
                                            MessageKind.EVENTS)[:-64] + bytes(64)),
            "malformed",
        ),
        "events_body_with_a_4300_digit_integer": (
            RawMessage(events_topic, signed(b'{"events":[{"type":"x","ts_ns":' + b"9" * 4_300 + b"}]}",
                                            MessageKind.EVENTS)),
            "malformed",
        ),
        "signed_invalid_utf8_in_the_path_dictionary": (
            RawMessage(topic, signed(_telemetry_body(_utf8(b"Vehicle.\xff"), _utf8(b"x"), now_ns))),
            "malformed",
        ),
        "signed_invalid_utf8_in_a_text_column": (
            RawMessage(topic, signed(_telemetry_body(_utf8(TEXT_SIGNAL.encode()), _utf8(b"\xc3\x28"), now_ns))),
            "malformed",
        ),
        "signed_lone_surrogate_in_an_event_type": (
            RawMessage(events_topic, event_body("\\ud83d")), "malformed"
        ),
        "signed_nul_in_an_event_type": (RawMessage(events_topic, event_body("a\\u0000b")), "malformed"),
        "signed_decompression_bomb": (RawMessage(topic, signed(encode_samples(bomb))), "too_large"),
        "oversized_garbage": (RawMessage(topic, os.urandom(1_200_000)), "too_large"),
    }  # fmt: skip


ATTACKS = [
    "header_of_16000_brackets",
    "header_with_a_4300_digit_integer",
    "header_with_a_lone_surrogate_vin",
    "unsigned_events_body_nested_16000_deep",
    "events_body_with_a_4300_digit_integer",
    "signed_invalid_utf8_in_the_path_dictionary",
    "signed_invalid_utf8_in_a_text_column",
    "signed_lone_surrogate_in_an_event_type",
    "signed_nul_in_an_event_type",
    "signed_decompression_bomb",
    "oversized_garbage",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_is_refused_with_its_reason_and_stores_nothing(
    attack: str, pipeline: IngestPipeline, fleet: Fleet, lake: MemoryLake, database: Database
) -> None:
    message, reason = _attacks(fleet, NOW_NS)[attack]
    report = pipeline.process([message])
    assert report.results[0].status == "refused" and report.results[0].reason == reason
    assert lake.rows() is None
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant=None)
        assert letter.reason == reason and letter.detail
        kept = dead_letter_payload(session, letter.dead_letter_id, tenant=None)
    assert letter.payload_size == len(message.payload)
    assert len(kept) <= max(64 * 1024, len(message.payload) if reason != "too_large" else 0) or (
        kept == message.payload
    )


def test_oversized_garbage_keeps_only_the_start_of_its_bytes_and_counts_the_rest(
    pipeline: IngestPipeline, fleet: Fleet, database: Database
) -> None:
    garbage = RawMessage(vehicle_topic(fleet.vin("eu1"), "telemetry"), os.urandom(3_000_000))
    pipeline.process([garbage])
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant=None)
        kept = dead_letter_payload(session, letter.dead_letter_id, tenant=None)
    assert letter.reason == "too_large" and letter.payload_size == 3_000_000
    assert kept == garbage.payload[: 64 * 1024]


def test_decompression_bomb_is_refused_before_it_is_decompressed(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, database: Database
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    text = samples_table([TEXT_SIGNAL], [0], [NOW_NS], [float("nan")], ["x" * 8_000_000])
    body = encode_samples(text)
    assert len(body) < 4_000
    pipeline = make_pipeline(limits=IngestLimits(body=IpcLimits(max_decompressed_bytes=1 << 20)))
    message = RawMessage(
        vehicle_topic(vin, "telemetry"),
        seal(MessageKind.TELEMETRY, vin, body, body_encoding="arrow-ipc", key=key, seq=1),
    )
    before = pa.total_allocated_bytes()
    report = pipeline.process([message])
    assert pa.total_allocated_bytes() - before < 1_000_000
    assert report.results[0].reason == "too_large"
    with database.session() as session:
        (letter,) = list_dead_letters(session, tenant="acme")
    assert "decompresses to" in letter.detail and letter.payload_bytes == len(message.payload)


def test_invalid_utf8_in_a_signed_text_sample_leaves_the_lake_readable(
    database: Database, fleet: Fleet, tmp_path: Path
) -> None:
    vin, key = fleet.vin("eu1"), fleet.key("eu1")
    with database.session() as session:
        set_consent(session, vin=vin, tenant="acme", categories=PRIVACY_CATEGORIES,
                    source="test", actor="test")  # fmt: skip
    lake = Lake(tmp_path / "data")
    now = wall_clock_ns()
    pipeline = IngestPipeline(database, lake, MemoryReportedState(), vehicle_cache_ttl_s=0)
    poisoned = seal(
        MessageKind.TELEMETRY, vin, _telemetry_body(_utf8(TEXT_SIGNAL.encode()), _utf8(b"\xed\xa0\x80"), now),
        body_encoding="arrow-ipc", key=key, seq=1,
    )  # fmt: skip
    good = telemetry(vin, key, [(TEXT_SIGNAL, now + 1, None, "DE*ION*E1234")], seq=2)
    try:
        report = pipeline.process([RawMessage(good.topic, poisoned), good])
        assert [r.status for r in report.results] == ["refused", "stored"]
        start = datetime.fromtimestamp(now / 1e9, UTC) - timedelta(minutes=1)
        table = lake.signals("acme", None, [TEXT_SIGNAL], start, start + timedelta(minutes=2))
    finally:
        lake.close()
    assert table.column("text").to_pylist() == ["DE*ION*E1234"]


def test_a_flood_of_dead_letters_from_one_sender_is_counted_not_stored(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, database: Database
) -> None:
    pipeline = make_pipeline(limits=IngestLimits(dead_letters_per_minute=5))
    topic = vehicle_topic(fleet.vin("eu1"), "telemetry")
    flood = [RawMessage(topic, os.urandom(200)) for _ in range(40)]
    report = pipeline.process(flood)
    assert report.dead_letters == 5 and report.dead_letters_not_kept == 35
    other = RawMessage(vehicle_topic(fleet.vin("eu2"), "telemetry"), os.urandom(200))
    assert pipeline.process([other]).dead_letters == 1  # another sender has its own budget
    with database.session() as session:
        assert len(list_dead_letters(session, tenant=None)) == 6
        totals = {o.outcome: o.messages for o in ingest_stats(session, tenant=None).totals}
    assert totals["malformed"] == 41 and totals["dead_letter_not_kept"] == 35


# --- a worker fed every attack keeps ingesting ---------------------------------------------------
def _feed_every_attack(
    transport: Transport,
    database: Database,
    fleet: Fleet,
    lake: MemoryLake,
    wait: Callable[[], None],
    group: str = "ingest",
) -> None:
    now = wall_clock_ns()
    attacks = [m for m, _ in _attacks(fleet, now).values()]
    vin, key = fleet.vin("eu2"), fleet.key("eu2")
    valid = [telemetry(vin, key, [(SOC, now + i, 40.0), (SPEED, now + i, 10.0)], seq=i) for i in range(30)]
    pipeline = IngestPipeline(database, lake, MemoryReportedState(), vehicle_cache_ttl_s=0)
    worker = IngestWorker(
        transport, pipeline, max_batch_messages=16, max_delay_ms=30, group=group
    ).start()
    try:
        time.sleep(0.3)  # the subscriptions are in place
        for i, message in enumerate(valid):
            if i < len(attacks):
                transport.publish(attacks[i].topic, attacks[i].payload, qos=1)
            transport.publish(message.topic, message.payload, qos=1)
        wait()
        deadline = time.monotonic() + 60
        while worker.stats().acknowledged < len(valid) + len(attacks) and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = worker.stats()
    finally:
        worker.stop()
    assert stats.acknowledged == len(valid) + len(attacks), stats
    assert stats.processing_errors == 0  # every attack was judged, none stalled the pipeline
    rows = lake.rows()
    assert rows is not None and len(set(rows.column("batch_id").to_pylist())) == len(valid)
    with database.session() as session:
        letters = list_dead_letters(session, tenant=None, limit=100)
    assert len(letters) == len(attacks)


def test_a_worker_fed_every_attack_keeps_ingesting_the_valid_messages_behind_them(
    database: Database, fleet: Fleet, lake: MemoryLake
) -> None:
    with InProcessTransport() as bus:
        _feed_every_attack(bus, database, fleet, lake, lambda: bus.drain(30))


def test_a_worker_fed_every_attack_through_mosquitto_keeps_ingesting(
    database: Database, fleet: Fleet, lake: MemoryLake, private_broker: PrivateBroker
) -> None:
    unique_name = f"hostile{uuid.uuid4().hex[:10]}"
    # A broker of this test alone: on the shared one, the worker's wildcard subscription would
    # also receive what concurrent tests publish, and the counts below would not add up.
    with MqttTransport(private_broker.url, client_id=f"{unique_name}-w",
                       session_expiry_s=60) as mqtt:
        _feed_every_attack(mqtt, database, fleet, lake, lambda: None, group=unique_name)
