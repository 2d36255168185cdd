"""Benchmark: batch CAN decoding and the whole `can decode` pipeline against cantools.

    python benchmarks/can_decode.py [--quick] [--frames N] [--repeats R]

Input: the real comma2k19 capture (``../shared/data/comma2k19/raw_can.csv``, 135,468 frames
on four buses, about 72 % of bus-0 frames in the DBC) and its DBC, replicated with shifted
timestamps to ``--frames`` frames (default 10,024,632 = 74 copies; ``--quick``: 1,490,148).

Measured in the same run, each measurement paired with its baseline (the two run back to back,
``--repeats`` pairs, default 5), so a noisy neighbour slows both sides of a pair alike; the
figures are medians over the pairs, and each ratio is the median of the per-pair ratios. The
cantools baselines are measured on a sample of the same frames, as a rate:

(a) decode: ``BatchDecoder.decode`` over all frames, in chunks of 262,144 frames (the chunks
    ``decode_capture`` hands it; each result dropped before the next, as in a stream), vs
    cantools' per-frame ``Database.decode_message`` (``decode_choices=False,
    allow_truncated=True``); both run in this one thread, so both are measured in CPU-seconds
    of the process (what a loaded machine's neighbours change least);
(b) pipeline: ``decode_capture`` (CSV read + decode + Parquet write) on a CSV file vs a
    straightforward loop doing the same with the ``csv`` module, ``decode_message`` and a
    pyarrow Parquet write (``write_table`` defaults), each side using the cores it likes
    (ours overlaps reading, decoding and writing on threads). Both sides start from the DBC
    loaded once before the timing, as in (a): loading it (about 0.1 s) is a fixed cost per
    run that the baseline's smaller sample would otherwise not carry alike.
(c) ``realistic``: the pipeline of (b), one core against one core: both sides pinned to one
    CPU (``sched_setaffinity``, pyarrow's thread pools set to one thread) and measured in
    CPU-seconds of the process, so the figure is per core whatever the neighbours do; the
    baseline writes its Parquet with the same settings as ``decode_capture``
    (``pipeline.parquet_options``: LZ4, timestamps byte-stream-split, dictionary pages for
    message and signal, statistics for the timestamp only, encoders fed 65,536 values per
    step) and the same columns declared non-nullable (all but ``value``); the two files'
    compression, statistics, encodings and definition levels are compared.

Progress goes to stderr; the last line on stdout is one JSON object (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "comma2k19"
CAPTURE = DATA / "raw_can.csv"
DBC = DATA / "toyota_new_mc_pt_generated.dbc"

FULL_COPIES = 74  # 74 x 135,468 = 10,024,632 frames
QUICK_COPIES = 11  # 1,490,148 frames
CANTOOLS_SAMPLE = 200_000
QUICK_CANTOOLS_SAMPLE = 100_000
DECODE_CHUNK_FRAMES = 1 << 18  # frames per decode call: decode_capture's PIPELINE_CHUNK_FRAMES

err = Console(stderr=True)


def _seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


@contextmanager
def _one_core() -> Iterator[int]:
    """Run the block on one CPU: this process pinned to it, pyarrow's pools at one thread."""
    allowed = os.sched_getaffinity(0)
    cpus, io_threads = pa.cpu_count(), pa.io_thread_count()
    core = min(allowed)
    os.sched_setaffinity(0, {core})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    try:
        yield core
    finally:
        pa.set_cpu_count(cpus)
        pa.set_io_thread_count(io_threads)
        os.sched_setaffinity(0, allowed)


def _paired_rates(
    ours: Callable[[], object], ours_frames: int, baseline: Callable[[], object], baseline_frames: int, repeats: int,
    clock: Callable[[Callable[[], object]], float] = _seconds,
) -> tuple[float, float, float]:
    """Frames per second of ``clock`` (wall by default) of ``ours`` and of ``baseline``
    (medians), and the median of per-pair ratios; the two run back to back in each of
    ``repeats`` pairs."""
    ours_fps, base_fps = [], []
    for _ in range(repeats):
        ours_fps.append(ours_frames / clock(ours))
        base_fps.append(baseline_frames / clock(baseline))
    ratios = [a / b for a, b in zip(ours_fps, base_fps)]
    return statistics.median(ours_fps), statistics.median(base_fps), statistics.median(ratios)


def _replicate(frames, target: int):  # type: ignore[no-untyped-def]
    from drivetrain.core.can import FrameBatch

    span = float(frames.timestamp_s.max() - frames.timestamp_s.min()) + 1.0
    copies = -(-target // len(frames))
    parts = [replace(frames, timestamp_s=frames.timestamp_s + i * span) for i in range(copies)]
    return FrameBatch.concat(parts).take(np.arange(target))


def _decode_chunks(decoder, chunks) -> int:  # type: ignore[no-untyped-def]
    """Decode chunk after chunk, each result dropped before the next (as a stream is)."""
    values = 0
    for chunk in chunks:
        values += len(decoder.decode(chunk))
    return values


def _cantools_decode(db, sample: list[tuple[int, bytes]]) -> int:  # type: ignore[no-untyped-def]
    values = 0
    for frame_id, data in sample:
        try:
            values += len(db.decode_message(frame_id, data, decode_choices=False, allow_truncated=True))
        except KeyError:  # id not in the DBC
            continue
        except Exception:  # noqa: BLE001 - cantools refuses some real frames; count and go on
            continue
    return values


def _parquet_settings(path: Path) -> dict[str, tuple[str, bool, tuple[str, ...], int]]:
    """Per column of the file's first row group: (compression, has statistics, encodings,
    definition levels: 0 for a required column)."""
    metadata = pq.ParquetFile(path).metadata
    group = metadata.row_group(0)
    settings = {}
    for i in range(group.num_columns):
        column = group.column(i)
        settings[column.path_in_schema] = (
            column.compression, column.is_stats_set, tuple(sorted(column.encodings)),
            metadata.schema.column(i).max_definition_level,
        )
    return settings


def _cantools_pipeline(  # type: ignore[no-untyped-def]
    db, csv_path: Path, out_path: Path, parquet: dict[str, Any] | None = None, schema: pa.Schema | None = None
) -> int:
    """The straightforward way: csv module, decode_message per frame, one pyarrow write
    (``parquet``: ``write_table`` options, default its defaults; ``schema``: the columns'
    nullability, default all nullable)."""
    t_s: list[float] = []
    bus: list[int] = []
    frame_ids: list[int] = []
    messages: list[str] = []
    signals: list[str] = []
    values: list[float] = []
    with csv_path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            frame_id = int(row[2])
            try:
                message = db.get_message_by_frame_id(frame_id)
                decoded = message.decode(bytes.fromhex(row[3]), decode_choices=False, allow_truncated=True)
            except KeyError:
                continue
            except Exception:  # noqa: BLE001 - cantools refuses some real frames
                continue
            t, b = float(row[0]), int(row[1])
            for name, value in decoded.items():
                t_s.append(t)
                bus.append(b)
                frame_ids.append(frame_id)
                messages.append(message.name)
                signals.append(name)
                values.append(float(value))
    table = pa.table(
        {
            "timestamp_s": pa.array(t_s, pa.float64()),
            "bus": pa.array(bus, pa.uint16()),
            "frame_id": pa.array(frame_ids, pa.uint32()),
            "message": pa.array(messages, pa.string()),
            "signal": pa.array(signals, pa.string()),
            "value": pa.array(values, pa.float64()),
        },
        schema=schema,
    )
    pq.write_table(table, out_path, **(parquet or {}))
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 1.5 M frames; under a minute")
    parser.add_argument("--frames", type=int, help="frames to replicate the capture to")
    parser.add_argument("--repeats", type=int, default=5, help="measurement pairs (ours, baseline); medians")
    args = parser.parse_args(argv)

    if not CAPTURE.is_file() or not DBC.is_file():
        err.print(f"[red]error:[/] the benchmark needs {CAPTURE} and {DBC} (the shared data beside the project)")
        return 2
    import cantools

    from drivetrain.core.can import (
        BatchDecoder,
        decode_capture,
        load_dbc,
        read_capture,
        write_capture,
    )
    from drivetrain.core.can import BASE_SCHEMA, parquet_options

    base = read_capture(CAPTURE).frames
    target = args.frames or len(base) * (QUICK_COPIES if args.quick else FULL_COPIES)
    sample_size = min(target, QUICK_CANTOOLS_SAMPLE if args.quick else CANTOOLS_SAMPLE)
    repeats = max(1, args.repeats)
    frames = _replicate(base, target)
    # the baseline's columns, nullable as decode_capture's (its names as plain strings)
    baseline_schema = pa.schema(
        [f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f for f in BASE_SCHEMA]
    )
    loaded_dbc = load_dbc(DBC)
    database = loaded_dbc.database
    reference_db = cantools.database.load_file(DBC, strict=False)
    err.print(f"{target:,} frames ({len(base):,}-frame comma2k19 capture replicated), {repeats} repeats")

    # (a) decode
    decoder = BatchDecoder(database)
    sample = [
        (fid, bytes(row[:n]))
        for fid, row, n in zip(
            frames.frame_id[:sample_size].tolist(), frames.data[:sample_size], frames.length[:sample_size].tolist()
        )
    ]
    # Decoded as a stream is, chunk after chunk (each result dropped before the next): one
    # batch of 10 M frames would make 25 M output rows at once and measure memory allocation
    # rather than decoding. One untimed pass first, so both sides start warm.
    chunks = [frames.take(np.arange(a, min(a + DECODE_CHUNK_FRAMES, target)))
              for a in range(0, target, DECODE_CHUNK_FRAMES)]
    with err.status("warm-up"):
        _decode_chunks(decoder, chunks)
        _cantools_decode(reference_db, sample)
    with err.status(f"batch decode vs cantools decode_message on {sample_size:,} frames"):
        batch_fps, cantools_fps, decode_ratio = _paired_rates(
            lambda: _decode_chunks(decoder, chunks), target,
            lambda: _cantools_decode(reference_db, sample), sample_size, repeats, clock=_cpu_seconds,
        )
    err.print(f"decode: batch {batch_fps:,.0f} frames per CPU-s, cantools {cantools_fps:,.0f} frames per CPU-s")

    # (b) whole pipeline: CSV -> decode -> Parquet
    with tempfile.TemporaryDirectory(prefix="can_decode_bench_") as tmp:
        tmp_dir = Path(tmp)
        big_csv, sample_csv = tmp_dir / "capture.csv", tmp_dir / "sample.csv"
        with err.status("writing the replicated capture as CSV"):
            write_capture(big_csv, frames)
            write_capture(sample_csv, frames.take(np.arange(sample_size)))
        summaries = []
        with err.status(f"pipeline: decode_capture vs a cantools loop on {sample_size:,} frames"):
            pipeline_fps, cantools_pipeline_fps, pipeline_ratio = _paired_rates(
                lambda: summaries.append(decode_capture(big_csv, loaded_dbc, tmp_dir / "out.parquet")), target,
                lambda: _cantools_pipeline(reference_db, sample_csv, tmp_dir / "ref.parquet"), sample_size,
                repeats,
            )
        err.print(f"pipeline: {pipeline_fps:,.0f} frames/s, cantools loop {cantools_pipeline_fps:,.0f} frames/s")
        with _one_core() as core, err.status(f"pipeline on CPU {core} alone, CPU-seconds, same Parquet settings"):
            one_core_fps, one_core_base_fps, one_core_ratio = _paired_rates(
                lambda: decode_capture(big_csv, loaded_dbc, tmp_dir / "out.parquet"), target,
                lambda: _cantools_pipeline(reference_db, sample_csv, tmp_dir / "ref.parquet",
                                           parquet_options(BASE_SCHEMA), baseline_schema),
                sample_size, repeats, clock=_cpu_seconds,
            )
        ours_settings, base_settings = (_parquet_settings(tmp_dir / n) for n in ("out.parquet", "ref.parquet"))
    if ours_settings != base_settings:
        err.print(f"[red]error:[/] the two sides wrote different Parquet: {ours_settings} vs {base_settings}")
        return 1
    err.print(f"pipeline, one core: {one_core_fps:,.0f} frames per CPU-s, cantools loop "
              f"{one_core_base_fps:,.0f} frames per CPU-s (x{one_core_ratio:.1f})")

    result = {
        "frames": target,
        "signal_values": summaries[-1].signal_values,
        "repeats": repeats,
        "cantools_sample_frames": sample_size,
        "batch_frames_per_cpu_s": round(batch_fps),
        "cantools_frames_per_cpu_s": round(cantools_fps),
        "decode_ratio": round(decode_ratio, 2),
        "pipeline_frames_per_s": round(pipeline_fps),
        "cantools_pipeline_frames_per_s": round(cantools_pipeline_fps),
        "pipeline_ratio": round(pipeline_ratio, 2),
        "realistic": {
            "cores": 1,
            "frames": target,
            "cantools_sample_frames": sample_size,
            "pipeline_frames_per_cpu_s": round(one_core_fps),
            "cantools_pipeline_frames_per_cpu_s": round(one_core_base_fps),
            "pipeline_ratio": round(one_core_ratio, 2),
            "parquet": "lz4; timestamp_s byte-stream-split; dictionary pages for message and signal; statistics for timestamp_s",
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
