"""Per-micro-batch work of the ingest hot path: one registry query per micro-batch, decoded
path dictionaries reused only for identical bytes, refused samples' streams cut from one
batch, and the NUL check exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from ingest_helpers import NOW_NS, SOC, SPEED, Fleet, telemetry
from sqlalchemy import event

from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import IngestPipeline, RawMessage, assembly
from drivetrain.cloud.ingest.envelopes import telemetry_columns
from drivetrain.cloud.ingest.validation import PathTable, SampleColumns
from drivetrain.core.errors import WireFormatError
from drivetrain.core.vss import builtin_catalog
from drivetrain.core.wire import decode_samples, encode_samples, samples_table
from drivetrain.core.wire.telemetry import TELEMETRY_SCHEMA


def _registry_queries(database: Database) -> tuple[list[str], Callable[[], None]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM fleet_vehicles" in statement:
            seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(database.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("ttl_s", [0.0, 5.0])
def test_a_micro_batch_asks_the_registry_once(
    make_pipeline: Callable[..., IngestPipeline], fleet: Fleet, database: Database, ttl_s: float
) -> None:
    pipeline = make_pipeline(vehicle_cache_ttl_s=ttl_s)
    stranger = "DTV00000000000000"
    messages = [
        telemetry(fleet.vin(name), fleet.key(name), [(SOC, NOW_NS, float(seq))], seq=seq)
        for seq, name in enumerate(["eu1", "eu2", "us1", "eu1", "eu2"], start=1)
    ]
    messages.append(telemetry(stranger, fleet.key("eu1"), [(SOC, NOW_NS, 1.0)], seq=9))
    messages.append(RawMessage("not/a/vehicle/topic", messages[0].payload))
    queries, stop = _registry_queries(database)
    try:
        report = pipeline.process(messages)
    finally:
        stop()
    assert [r.status for r in report.results] == ["stored"] * 5 + ["refused"] * 2
    assert [r.reason for r in report.results[5:]] == ["unknown_vehicle", "malformed"]
    assert len(queries) == 1, queries
    queries, stop = _registry_queries(database)
    try:  # the next micro-batch: asked again only when nothing is cached (TTL 0)
        again = pipeline.process([telemetry(fleet.vin("eu1"), fleet.key("eu1"),
                                            [(SOC, NOW_NS, 7.0)], seq=20)])  # fmt: skip
    finally:
        stop()
    assert again.results[0].status == "stored"
    assert len(queries) == (1 if ttl_s == 0 else 0)


def _body(paths: list[str], index: list[int], values: list[float]) -> bytes:
    return encode_samples(samples_table(paths, index, [NOW_NS] * len(index), values))


def test_a_repeated_dictionary_is_reused_and_another_of_the_same_shape_is_not() -> None:
    table = PathTable(builtin_catalog())
    first = decode_samples(_body([SOC, SPEED], [0, 1], [1.0, 2.0]))
    again = decode_samples(_body([SOC, SPEED], [1, 0], [3.0, 4.0]))
    swapped = decode_samples(_body([SPEED, SOC], [1, 0], [5.0, 6.0]))
    assert again.column("path").to_pylist() == [SPEED, SOC]
    assert swapped.column("path").to_pylist() == [SOC, SPEED]
    ids = [telemetry_columns(t, table).path_id.tolist() for t in (first, again, swapped)]
    soc, speed = ids[0]
    assert soc != speed
    assert ids[1] == [speed, soc]
    assert ids[2] == [soc, speed]
    assert table.path(soc) == SOC and table.path(speed) == SPEED


def _with_text_buffers(offsets: list[int], data: bytes, valid: list[bool]) -> bytes:
    """A body whose text column is built from raw buffers (bytes under null slots too)."""
    rows = len(valid)
    bitmap = pa.py_buffer(np.packbits(np.array(valid), bitorder="little").tobytes())
    text = pa.Array.from_buffers(
        pa.utf8(), rows,
        [bitmap, pa.py_buffer(np.array(offsets, np.int32).tobytes()), pa.py_buffer(data)],
    )  # fmt: skip
    base = samples_table([SOC], [0] * rows, [NOW_NS] * rows, [1.0] * rows)
    return encode_samples(pa.Table.from_arrays([*base.columns[:3], text], schema=TELEMETRY_SCHEMA))


def test_a_nul_in_a_string_is_refused_and_bytes_under_a_null_slot_are_not() -> None:
    with pytest.raises(WireFormatError, match="NUL"):
        decode_samples(_with_text_buffers([0, 1, 4], b"aa\x00b", [True, True]))
    table = decode_samples(_with_text_buffers([0, 1, 4], b"aa\x00b", [True, False]))
    assert table.column("text").to_pylist() == ["a", None]


def test_each_refused_samples_stream_holds_its_own_rows() -> None:
    paths = PathTable(builtin_catalog())
    ids = paths.ids_for([SOC, SPEED, "Vehicle.Not.A.Signal"])
    rows = 12
    columns = SampleColumns(
        vehicle=np.zeros(rows, np.int32),
        path_id=ids[np.arange(rows) % 3].astype(np.int32),
        ts_ns=NOW_NS + np.arange(rows, dtype=np.int64),
        value=np.arange(rows, dtype=np.float64),
        value_valid=np.arange(rows) % 4 != 0,
        text=pa.array([f"t{i}" if i % 5 == 0 else None for i in range(rows)], pa.utf8()),
        text_valid=np.arange(rows) % 5 == 0,
    )
    groups = [np.array([2, 5, 8]), np.array([0]), np.array([11, 3, 7, 10])]
    streams = assembly.refused_samples_ipc(columns, groups, paths)
    assert len(streams) == 3
    for group, stream in zip(groups, streams, strict=True):
        table = assembly.read_refused_samples(stream)
        assert table.schema.equals(assembly.REFUSED_SAMPLES_SCHEMA)
        assert table.column("path").to_pylist() == [paths.path(int(ids[r % 3])) for r in group]
        assert table.column("ts").cast(pa.int64()).to_pylist() == [NOW_NS + int(r) for r in group]
        assert table.column("value").to_pylist() == [
            None if r % 4 == 0 else float(r) for r in group
        ]
        assert table.column("text").to_pylist() == [f"t{r}" if r % 5 == 0 else None for r in group]
    assert assembly.refused_samples_ipc(columns, [], paths) == []


def test_a_refused_samples_stream_carries_no_bytes_of_another_group() -> None:
    # Each stream is built from its own rows: another vehicle's path or text is not in it,
    # not even in a buffer its rows do not point into.
    paths = PathTable(builtin_catalog())
    names = ["Vehicle.Secret.Alpha", "Vehicle.Secret.Bravo", "Vehicle.Secret.Charlie"]
    ids = paths.ids_for(names)
    texts = ["text-of-alpha", None, "text-of-charlie", None]
    columns = SampleColumns(
        vehicle=np.arange(4, dtype=np.int32),
        path_id=ids[[0, 1, 2, 1]].astype(np.int32),
        ts_ns=NOW_NS + np.arange(4, dtype=np.int64),
        value=np.array([1.5, 2.5, 3.5, 4.5]),
        value_valid=np.array([True, True, False, True]),
        text=pa.array(texts, pa.utf8()),
        text_valid=np.array([t is not None for t in texts]),
    )
    groups = [np.array([0]), np.array([1, 3]), np.array([2])]
    alpha, bravo, charlie = assembly.refused_samples_ipc(columns, groups, paths)
    assert b"Bravo" not in alpha and b"Charlie" not in alpha and b"charlie" not in alpha
    assert b"Alpha" not in bravo and b"Charlie" not in bravo and b"text-of" not in bravo
    assert b"Alpha" not in charlie and b"alpha" not in charlie and b"Bravo" not in charlie
    table = assembly.read_refused_samples(bravo)
    assert table.column("path").to_pylist() == [names[1], names[1]]
    assert table.column("value").to_pylist() == [2.5, 4.5]
    assert table.column("text").to_pylist() == [None, None]
    assert assembly.read_refused_samples(charlie).column("value").to_pylist() == [None]
