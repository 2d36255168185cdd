"""Capture → decode → (map to VSS) → Parquet, streamed chunk by chunk.

``decode_capture`` is what ``drivetrain can decode`` runs. It reads the capture in chunks
(``captures.iter_capture``), decodes each with the batch decoder, optionally maps the values to
VSS, and appends each chunk as a row group to a Parquet file. Memory stays bounded by one
chunk, and the output appears only when everything succeeded: it is written to a temporary
file beside ``out_path`` and renamed at the end.

Output columns (one row per decoded signal value):

==============  ========================  ==================================================
``timestamp_s`` float64                   frame time, seconds, as in the capture
``bus``         uint16                    bus number
``frame_id``    uint32                    CAN id (without the extended flag)
``message``     dictionary<string>        DBC message name
``signal``      dictionary<string>        DBC signal name
``value``       float64 (nullable)        physical value (raw * scale + offset); with a map,
                                          converted to the VSS signal's unit; null where the
                                          frame was shorter than the DBC message and did not
                                          carry the signal (see ``truncated_frames``)
``vss_path``    dictionary<string>        only with a map: the VSS path
==============  ========================  ==================================================

Only ``value`` may be null; the other columns are declared non-nullable (Parquet "required").

Without a map, every frame whose id is in the DBC gives one row per signal of its message
(per signal of its branch, for multiplexed messages). With a map, only mapped signal values
are written (one row per map entry that matches), and
the CAN provenance columns are kept so every VSS value can be traced to its frame.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from cantools.database.can import Database

from drivetrain.core.can.captures import (
    CaptureChunk,
    CaptureFormat,
    MalformedLine,
    detect_format,
    iter_capture,
)
from drivetrain.core.can.dbc import LoadedDbc, load_dbc
from drivetrain.core.can.frames import DecodedSignals
from drivetrain.core.can.signal_map import SignalMap, load_signal_map
from drivetrain.core.can.truncated_frames import CompletingDecoder
from drivetrain.core.errors import CaptureFormatError, DbcFormatError, StorageError

#: Frames per chunk: small enough that reading, decoding and writing overlap on two cores,
#: large enough that per-chunk costs vanish (measured on comma2k19: 256 k beats 1 M).
PIPELINE_CHUNK_FRAMES = 262_144
#: Values per Parquet encoder step (``write_batch_size``).
PARQUET_WRITE_BATCH = 65_536
#: Malformed-line reports kept in a summary (the count covers them all).
MAX_MALFORMED_KEPT = 1000
#: Unknown ids listed in a summary, most frequent first.
TOP_UNKNOWN_IDS = 10

_DICT = pa.dictionary(pa.int32(), pa.string())
# Every column but ``value`` is never null: declared so (Parquet "required"), the file carries
# no definition levels for them, and writing costs a third less.
BASE_SCHEMA = pa.schema(
    [
        pa.field("timestamp_s", pa.float64(), nullable=False),
        pa.field("bus", pa.uint16(), nullable=False),
        pa.field("frame_id", pa.uint32(), nullable=False),
        pa.field("message", _DICT, nullable=False),
        pa.field("signal", _DICT, nullable=False),
        pa.field("value", pa.float64()),
    ]
)
VSS_SCHEMA = BASE_SCHEMA.append(pa.field("vss_path", _DICT, nullable=False))


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """The ``pq.ParquetWriter`` options ``decode_capture`` writes ``schema`` with.

    LZ4 (the raw block format) and the timestamps stored byte-stream-split: on comma2k19 a
    third of snappy's size (the timestamps' high bytes, alike within a signal's run, then
    compress) and a tenth less write time. Dictionary pages for the name columns.
    """
    return {
        "compression": "lz4",
        "use_dictionary": [n for n in schema.names if pa.types.is_dictionary(schema.field(n).type)],
        "column_encoding": {"timestamp_s": "BYTE_STREAM_SPLIT"},
        # min/max of time per row group is what range queries prune on; statistics on the
        # other columns cost a third of the write time and buy little
        "write_statistics": ["timestamp_s"],
        # values handed to the encoders per step (pyarrow's default: 1,024): a chunk's
        # columns go in larger steps, a tenth less write time, the same file format
        "write_batch_size": PARQUET_WRITE_BATCH,
    }


#: Decoders already built, per DBC database (building the plans of a large DBC costs tens of
#: milliseconds; a service decoding many captures with one loaded DBC pays it once).
_DECODERS: weakref.WeakKeyDictionary[Database, CompletingDecoder] = weakref.WeakKeyDictionary()
_DECODERS_LOCK = threading.Lock()


def _decoder_for(database: Database) -> CompletingDecoder:
    with _DECODERS_LOCK:
        decoder = _DECODERS.get(database)
        if decoder is None:
            decoder = _DECODERS[database] = CompletingDecoder(database)
        return decoder


@dataclass(frozen=True)
class DecodeProgress:
    """How far a decode has got: bytes of the capture read (of ``bytes_total``), frames read."""

    bytes_read: int
    bytes_total: int
    frames_read: int


ProgressCallback = Callable[[DecodeProgress], None]


@dataclass(frozen=True)
class DecodeSummary:
    """What ``decode_capture`` did.

    ``frames_decoded`` counts frames whose id is in the DBC (on the selected bus), of which
    ``frames_truncated`` were shorter than their message (``values_missing`` nulls written)
    and ``frames_rejected`` had a multiplexer value without a branch (no values);
    ``frames_unknown_id`` those whose id is not, with ``top_unknown_ids`` as ``(frame id,
    frames)`` pairs, most frequent first; ``frames_other_bus`` those left out by ``bus``.
    ``malformed`` holds the first ``MAX_MALFORMED_KEPT`` reports of ``malformed_count``.
    """

    capture_path: Path
    out_path: Path
    frames_read: int
    frames_decoded: int
    frames_truncated: int
    frames_rejected: int
    values_missing: int
    frames_unknown_id: int
    top_unknown_ids: tuple[tuple[int, int], ...]
    frames_other_bus: int
    signal_values: int
    malformed: tuple[MalformedLine, ...]
    malformed_count: int
    seconds: float
    dbc_notes: tuple[str, ...] = ()
    vss_mapped: bool = False

    @property
    def frames_per_s(self) -> float:
        """Frames read per second of wall time."""
        return self.frames_read / self.seconds if self.seconds > 0 else float("inf")


def _dictionary(indices: np.ndarray, names: pa.Array) -> pa.DictionaryArray:
    # the decoder's indices point into its own name tuples by construction: no bounds check
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), names, safe=False)


def signals_table(
    decoded: DecodedSignals,
    signal_map: SignalMap | None = None,
    missing: np.ndarray | None = None,
) -> pa.Table:
    """The Parquet rows for one decoded chunk (see the module docstring for the columns);
    ``missing`` marks values written as null."""
    messages = pa.array(decoded.message_names, pa.string())
    signals = pa.array(decoded.signal_names, pa.string())
    if signal_map is None:
        columns = [
            pa.array(decoded.timestamp_s, pa.float64()),
            pa.array(decoded.bus, pa.uint16()),
            pa.array(decoded.frame_id, pa.uint32()),
            _dictionary(decoded.message_index, messages),
            _dictionary(decoded.signal_index, signals),
            pa.array(decoded.value, pa.float64(), mask=missing),
        ]
        return pa.Table.from_arrays(columns, schema=BASE_SCHEMA)
    vss = signal_map.apply(decoded)
    rows = vss.source_row
    columns = [
        pa.array(vss.timestamp_s, pa.float64()),
        pa.array(decoded.bus[rows], pa.uint16()),
        pa.array(decoded.frame_id[rows], pa.uint32()),
        _dictionary(decoded.message_index[rows], messages),
        _dictionary(decoded.signal_index[rows], signals),
        pa.array(vss.value, pa.float64(), mask=None if missing is None else missing[rows]),
        _dictionary(vss.path_index, pa.array(vss.paths, pa.string())),
    ]
    return pa.Table.from_arrays(columns, schema=VSS_SCHEMA)


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _read_ahead(chunks: Iterator[CaptureChunk]) -> Iterator[CaptureChunk]:
    """The chunks of ``chunks``, read one ahead on a background thread.

    Parsing (pyarrow) and hex decoding (NumPy) release the GIL, so reading the next chunk
    overlaps decoding and writing this one. Errors are re-raised here, in order.
    """
    handoff: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                handoff.put(("chunk", chunk))
            handoff.put(("done", None))
        except BaseException as e:  # handed to the consumer, which re-raises it
            handoff.put(("error", e))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="capture-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = handoff.get()
            if kind == "chunk":
                yield item  # type: ignore[misc]
            elif kind == "done":
                return
            else:
                raise item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            try:
                handoff.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _no_frames(capture: Path, malformed: list[MalformedLine], count: int) -> str:
    """Why a capture gave no frame at all: empty, nothing in it the reader recognised, or
    every line malformed (the first one's reason, without its bytes, which may be anything)."""
    size = capture.stat().st_size if capture.is_file() else 0
    if not count and not size:
        return f"{capture}: holds no CAN frame (the file is empty); nothing written"
    if not count:
        return (f"{capture}: no CAN frame found in its {size:,} bytes: nothing in it reads as "
                f"the {detect_format(capture)!r} format its name implies; nothing written")
    first = malformed[0]
    return (f"{capture}: no CAN frame could be read: all {count:,} lines are malformed "
            f"(line {first.line}: {first.reason}); nothing written")


def decode_capture(
    capture_path: str | Path,
    dbc_path: str | Path | LoadedDbc,
    out_path: str | Path,
    *,
    signal_map: SignalMap | str | Path | None = None,
    bus: int | None = None,
    progress: ProgressCallback | None = None,
    strict: bool = False,
    capture_format: CaptureFormat | None = None,
    chunk_frames: int = PIPELINE_CHUNK_FRAMES,
) -> DecodeSummary:
    """Decode every frame of a capture with a DBC and write the signal values to Parquet.

    Args:
        capture_path: the capture (any format ``captures.detect_format`` knows).
        dbc_path: the DBC (loaded with ``dbc.load_dbc``: IMPORTs and unflagged extended ids
            resolved), or a DBC already loaded that way (a service decoding many captures
            with one DBC loads it once).
        out_path: the Parquet file to write (replaced only on success).
        signal_map: a map (or its TOML/YAML file, validated against the DBC and the built-in
            VSS catalog) to write VSS values instead of raw CAN signals.
        bus: decode only the frames of this bus (default: every bus).
        progress: called after each chunk.
        strict: stop at the first malformed capture line instead of reporting and skipping it.
        capture_format: the capture format, when the extension and header do not tell.
        chunk_frames: frames per chunk (bounds memory).

    Raises:
        DbcFormatError: the DBC cannot be loaded.
        SignalMapError: the map is malformed or does not fit the DBC/catalog.
        CaptureFormatError: the capture cannot be read, holds no frame at all (empty, or
            every line malformed), or (with ``strict``) has a bad line.
        StorageError: the output cannot be written.
    """
    started = time.perf_counter()
    capture_path, out_path = Path(capture_path), Path(out_path)
    loaded = dbc_path if isinstance(dbc_path, LoadedDbc) else load_dbc(dbc_path)
    dbc_path = loaded.path
    if not loaded.database.messages:
        raise DbcFormatError(f"{dbc_path}: defines no message (BO_), so no frame can be decoded "
                             "with it; expected a DBC with message definitions")
    if isinstance(signal_map, str | Path):
        from drivetrain.core.vss import builtin_catalog

        signal_map = load_signal_map(
            signal_map, loaded.database, builtin_catalog(), dbc_name=Path(dbc_path).name
        )
    decoder = _decoder_for(loaded.database)
    bytes_total = capture_path.stat().st_size if capture_path.is_file() else 0
    schema = (VSS_SCHEMA if signal_map is not None else BASE_SCHEMA).with_metadata(
        {"drivetrain.capture": capture_path.name, "drivetrain.dbc": Path(dbc_path).name}
    )
    tmp_path = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    frames_read = frames_decoded = other_bus = values = malformed_count = 0
    truncated = rejected = missing_values = 0
    unknown: Counter[int] = Counter()
    malformed: list[MalformedLine] = []
    try:
        writer = pq.ParquetWriter(tmp_path, schema, **parquet_options(schema))
    except OSError as e:
        raise StorageError(f"cannot write '{out_path}': {e}") from e
    # Parquet encoding releases the GIL: each chunk is written on a second thread while the
    # next one is decoded (at most one write in flight, so row groups stay in order), and the
    # next chunk is read ahead on a third. On one CPU the threads only take turns, and their
    # hand-offs cost about a quarter of the work: everything then runs in this thread.
    overlap = _usable_cpus() > 1
    writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-write")
    pending: Future[None] | None = None
    try:
        with writer, writes:
            chunks = iter_capture(
                capture_path, capture_format=capture_format, strict=strict, chunk_frames=chunk_frames
            )
            for chunk in _read_ahead(chunks) if overlap else chunks:
                frames = chunk.frames
                frames_read += len(frames)
                malformed_count += len(chunk.malformed)
                malformed.extend(chunk.malformed[: MAX_MALFORMED_KEPT - len(malformed)])
                if bus is not None:
                    on_bus = frames.bus == bus
                    other_bus += len(frames) - int(on_bus.sum())
                    frames = frames.take(on_bus)
                decoded = decoder.decode(frames)
                frames_decoded += decoded.report.decoded_frames + decoded.report.rejected_frame_count
                rejected += decoded.report.rejected_frame_count
                truncated += decoded.truncated_frames
                unknown.update({k.frame_id: n for k, n in decoded.report.unknown_frames.items()})
                table = signals_table(decoded.signals, signal_map, decoded.missing)
                missing_values += table.column("value").null_count
                values += table.num_rows
                if table.num_rows and not overlap:
                    writer.write_table(table)
                elif table.num_rows:
                    if pending is not None:
                        pending.result()
                    pending = writes.submit(writer.write_table, table)
                if progress is not None:
                    progress(DecodeProgress(chunk.bytes_read, bytes_total, frames_read))
            if pending is not None:
                pending.result()
        if frames_read == 0 and other_bus == 0:
            raise CaptureFormatError(_no_frames(capture_path, malformed, malformed_count))
        os.replace(tmp_path, out_path)
    except OSError as e:
        raise StorageError(f"cannot write '{out_path}': {e}") from e
    finally:
        tmp_path.unlink(missing_ok=True)
    return DecodeSummary(
        capture_path=capture_path,
        out_path=out_path,
        frames_read=frames_read,
        frames_decoded=frames_decoded,
        frames_truncated=truncated,
        frames_rejected=rejected,
        values_missing=missing_values,
        frames_unknown_id=sum(unknown.values()),
        top_unknown_ids=tuple(unknown.most_common(TOP_UNKNOWN_IDS)),
        frames_other_bus=other_bus,
        signal_values=values,
        malformed=tuple(malformed),
        malformed_count=malformed_count,
        seconds=time.perf_counter() - started,
        dbc_notes=loaded.notes,
        vss_mapped=signal_map is not None,
    )
