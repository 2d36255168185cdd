"""Whole-column steps of a micro-batch (pure): join the batches' samples, cut the lake's tables,
find the latest value per (vehicle, signal), count outcomes, group refused samples.

Work per sample is NumPy or Arrow; Python runs per batch, per distinct path, per vehicle, or per
(vehicle, signal) pair — never per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.cloud.ingest.envelopes import TelemetryBody
from drivetrain.cloud.ingest.reasons import ACCEPTED_CODE, CODE_OUTCOMES, NOT_CONSENTED_CODE
from drivetrain.cloud.ingest.sinks import ReportedValue
from drivetrain.cloud.ingest.validation import KIND_ARRAY, KIND_STRING, PathTable, SampleColumns
from drivetrain.core.vss.datatypes import element_type
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES
from drivetrain.core.wire import TELEMETRY_SCHEMA

_CATEGORIES: Final = tuple(PRIVACY_CATEGORIES)


_TS_TYPE: Final = pa.timestamp("ns", tz="UTC")
#: Schema of refused samples kept in a sample-level dead letter (Arrow IPC stream).
REFUSED_SAMPLES_SCHEMA: Final = pa.schema(
    [pa.field("path", pa.utf8()), *list(TELEMETRY_SCHEMA)[1:]]
)
N_CODES: Final = len(CODE_OUTCOMES)
# An Arrow IPC stream is its schema message, its record batch messages and this marker.
_REFUSED_SCHEMA_MESSAGE: Final = REFUSED_SAMPLES_SCHEMA.serialize().to_pybytes()
_END_OF_STREAM: Final = b"\xff\xff\xff\xff\x00\x00\x00\x00"
#: Above this many (vehicle, path) cells, the latest-value search sorts instead of using a
#: dense table.
_DENSE_CELLS: Final = 8_000_000


def join_bodies(
    bodies: Sequence[TelemetryBody], vehicle_of_body: Sequence[int]
) -> tuple[SampleColumns, npt.NDArray[np.int32]]:
    """One set of columns for many batches, plus each sample's batch (body) index."""
    lengths = np.array([len(b) for b in bodies], np.int64)
    body_index = np.repeat(np.arange(len(bodies), dtype=np.int32), lengths)
    vehicle = np.repeat(np.asarray(vehicle_of_body, np.int32), lengths) if len(bodies) \
        else body_index
    if len(bodies) == 1:
        b = bodies[0]
        columns = SampleColumns(
            vehicle, b.path_id, b.ts_ns, b.value, b.value_valid, b.text, b.text_valid
        )
        return columns, body_index
    texts = [b.text for b in bodies]
    columns = SampleColumns(
        vehicle=vehicle,
        path_id=_concat([b.path_id for b in bodies], np.int32),
        ts_ns=_concat([b.ts_ns for b in bodies], np.int64),
        value=_concat([b.value for b in bodies], np.float64),
        value_valid=_concat([b.value_valid for b in bodies], np.bool_),
        text=pa.concat_arrays(texts) if texts else pa.array([], pa.utf8()),
        text_valid=_concat([b.text_valid for b in bodies], np.bool_),
    )
    return columns, body_index


def _concat(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def lake_table(
    columns: SampleColumns,
    rows: npt.NDArray[np.intp] | None,
    body_index: npt.NDArray[np.int32],
    batch_ids: Sequence[str],
    pseudonyms: Sequence[str],
    paths: PathTable,
    campaigns: Sequence[str | None] | None = None,
    category: npt.NDArray[np.uint8] | None = None,
    dimensions: Sequence[str | None] | None = None,
) -> pa.Table:
    """The lake's rows for the samples at ``rows`` (positions, in order; None: all).

    ``category`` gives every sample's privacy category index where some are not their path's
    in ``paths`` (custom signals judged against a vehicle's own catalog).

    Columns: vehicle (pseudonym), path, ts, value, text, category, batch_id, campaign and
    dimensions (per batch, from ``campaigns`` and ``dimensions``; null where a batch has none)
    — strings as dictionaries over the micro-batch's distinct values.
    """

    def pick(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return array if rows is None else array[rows]

    path_id = pick(columns.path_id)
    value_valid = pick(columns.value_valid)
    value = float_array(pick(columns.value), None if value_valid.all() else value_valid)
    if rows is None:
        text = columns.text
    elif columns.text_valid[rows].any():
        text = columns.text.take(pa.array(rows))
    else:  # no string sample among them (the usual case): no gather of the text column
        text = pa.nulls(len(rows), pa.utf8())
    if text.null_count == len(text):
        text = pa.nulls(len(text), pa.utf8())
    batch_of = pick(body_index)
    path_codes, used_paths = _used(path_id, len(paths),
                                   np.int16 if len(paths) <= 32767 else np.int32)
    names = paths.paths
    arrays = [
        _used_dictionary(pick(columns.vehicle), pseudonyms, np.int32),
        pa.DictionaryArray.from_arrays(
            path_codes, pa.array([names[i] for i in used_paths.tolist()], pa.utf8())
        ),
        pa.array(pick(columns.ts_ns), _TS_TYPE),
        value,
        text.cast(pa.utf8()),
        _category_of_paths(path_codes, paths.category.take(used_paths)) if category is None
        else _used_dictionary(pick(category), _CATEGORIES, np.int8),
        _used_dictionary(batch_of, batch_ids, np.int32),
        _per_batch_column(batch_of, campaigns),
        _per_batch_column(batch_of, dimensions),
    ]
    names = ["vehicle", "path", "ts", "value", "text", "category", "batch_id", "campaign",
             "dimensions"]
    return pa.Table.from_arrays(arrays, names=names)


def float_array(
    values: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_] | None
) -> pa.Array:
    """``values`` as an Arrow float64 array, null where ``valid`` is False (None: none
    null). Builds the validity bitmap with NumPy: ``pa.array(values, mask=...)`` converts
    the mask element by element (milliseconds per 10,000 rows)."""
    values = np.ascontiguousarray(values, np.float64)
    if valid is None:
        return pa.array(values, pa.float64())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.float64(), len(values), [bitmap, pa.py_buffer(values)],
        null_count=len(values) - int(np.count_nonzero(valid)),
    )


def _used_dictionary(
    codes: npt.NDArray[Any], names: Sequence[str], index_type: type[np.signedinteger[Any]]
) -> pa.DictionaryArray:
    """``names[codes]`` as a dictionary array holding only the names used, in code order
    (the lake keeps dictionaries so; one it need not compact is not rebuilt there)."""
    remapped, used = _used(codes, len(names), index_type)
    return pa.DictionaryArray.from_arrays(
        remapped, pa.array([names[i] for i in used.tolist()], pa.utf8())
    )


def _used(
    codes: npt.NDArray[Any], n: int, index_type: type[np.signedinteger[Any]]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.intp]]:
    """``codes`` (of ``n`` entries) renumbered over the entries they use, as ``index_type``,
    and those entries in order."""
    counts = np.bincount(codes, minlength=n) if len(codes) else np.zeros(0, np.int64)
    used = np.flatnonzero(counts)
    if len(used) == n:
        return np.asarray(codes, index_type), used
    remap = np.zeros(n, index_type)
    remap[used] = np.arange(len(used), dtype=index_type)
    return remap.take(codes), used


def _category_of_paths(
    path_codes: npt.NDArray[Any], of_path: npt.NDArray[np.uint8]
) -> pa.DictionaryArray:
    """Each row's privacy category as its path's (``of_path``: the category index of each
    entry of the rows' path dictionary, which ``path_codes`` index): worked out per distinct
    path and gathered once, not looked up and counted per row."""
    used, entry_code = np.unique(of_path, return_inverse=True)
    codes = entry_code.reshape(-1).astype(np.int8).take(path_codes)
    return pa.DictionaryArray.from_arrays(
        codes, pa.array([_CATEGORIES[i] for i in used.tolist()], pa.utf8())
    )


def _per_batch_column(
    body_index: npt.NDArray[np.int32], per_batch: Sequence[str | None] | None
) -> pa.Array:
    """Each sample's value of a per-batch string (its campaign, its dimensions), as a
    dictionary over the distinct values."""
    if not per_batch or all(c is None for c in per_batch):
        return pa.nulls(len(body_index), pa.dictionary(pa.int16(), pa.utf8()))
    ids = sorted({c for c in per_batch if c is not None})
    code = {c: i for i, c in enumerate(ids)}
    per_body = np.array([code.get(c, -1) if c is not None else -1 for c in per_batch], np.int16)
    codes = per_body[body_index]
    return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                          pa.array(ids, pa.utf8()))


def latest_reports(
    columns: SampleColumns,
    accepted: npt.NDArray[np.bool_],
    vins: Sequence[str],
    paths: PathTable,
) -> dict[str, dict[str, ReportedValue]]:
    """Per VIN and path, the accepted sample measured last (the latest of equal timestamps
    is the one later in the micro-batch), as ``(value, ts)`` in the signal's VSS form
    (bool, int, float or str; array signals are left out: the twin holds scalars)."""
    return reports_of(columns, latest_rows(columns, accepted, len(vins), len(paths)), vins, paths)


def latest_rows(
    columns: SampleColumns, accepted: npt.NDArray[np.bool_], n_vehicles: int, n_paths: int
) -> npt.NDArray[np.intp]:
    """Rows of the accepted sample measured last per (vehicle, path); of equal timestamps,
    the later row."""
    every = bool(accepted.all())
    rows = np.arange(len(accepted)) if every else np.flatnonzero(accepted)
    if not len(rows):
        return rows
    if every:  # no selection: work on the columns themselves
        key = columns.vehicle.astype(np.int64) * n_paths + columns.path_id
        ts = columns.ts_ns
    else:
        key = columns.vehicle[rows].astype(np.int64) * n_paths + columns.path_id[rows]
        ts = columns.ts_ns[rows]
    if n_vehicles * n_paths <= _DENSE_CELLS:
        newest = np.full(n_vehicles * n_paths, np.iinfo(np.int64).min, np.int64)
        np.maximum.at(newest, key, ts)
        candidates = np.flatnonzero(ts == newest[key])
        last = np.full(len(newest), -1, np.int64)
        np.maximum.at(last, key[candidates], candidates)
        chosen = last[last >= 0]
    else:
        order = np.lexsort((np.arange(len(rows)), ts, key))
        ends = np.flatnonzero(np.diff(key[order], append=np.int64(-1)) != 0)
        chosen = order[ends]
    return rows[chosen]


def reports_of(
    columns: SampleColumns,
    picked: npt.NDArray[np.intp],
    vins: Sequence[str],
    paths: PathTable,
) -> dict[str, dict[str, ReportedValue]]:
    """The samples at ``picked`` as reports: VIN → path → ``(value, measured at)`` in the
    signal's VSS form (array signals left out). Converted column by column (a few thousand
    values per micro-batch), then gathered into the mapping in one pass."""
    reports: dict[str, dict[str, ReportedValue]] = {}
    if not len(picked):
        return reports
    modes = report_modes(paths)
    path_id = columns.path_id[picked]
    mode = modes[path_id]
    kept = mode != SKIP
    picked, path_id, mode = picked[kept], path_id[kept], mode[kept]
    if not len(picked):
        return reports
    values: list[Any] = [None] * len(picked)
    for code, convert in _CONVERTERS.items():
        at = np.flatnonzero(mode == code)
        if len(at):
            converted = convert(columns, picked[at])
            for position, value in zip(at.tolist(), converted, strict=True):
                values[position] = value
    ts_ns = columns.ts_ns[picked]
    distinct, which = np.unique(ts_ns, return_inverse=True)  # a micro-batch shares few times
    stamps = [
        datetime.fromtimestamp(t // 1_000_000_000, UTC).replace(
            microsecond=(t % 1_000_000_000) // 1000)
        for t in distinct.tolist()
    ]  # fmt: skip
    names = path_names(paths)
    for v, p, value, w in zip(columns.vehicle[picked].tolist(), path_id.tolist(), values,
                              which.reshape(-1).tolist(), strict=True):  # fmt: skip
        reports.setdefault(vins[v], {})[names[p]] = (value, stamps[w])
    return reports


# How reports_of converts a path's samples: not at all (custom signals: lake only; arrays:
# the twin holds scalars), its text, or its number as bool, float or int.
SKIP, TEXT, BOOL, FLOAT, INT = 0, 1, 2, 3, 4


def report_modes(paths: PathTable) -> npt.NDArray[np.int8]:
    """How each path of ``paths`` (by id) is reported to the twins: :data:`SKIP`,
    :data:`TEXT`, :data:`BOOL`, :data:`FLOAT` or :data:`INT`."""
    return np.array([_report_mode(paths.spec(i), paths.kind[i]) for i in range(len(paths))],
                    np.int8)  # fmt: skip


def path_names(paths: PathTable) -> list[str]:
    """The VSS path of each id of ``paths`` ("" for an unknown path)."""
    return [spec.path if spec is not None else "" for spec in map(paths.spec, range(len(paths)))]


def _report_mode(spec: Any, kind: int) -> int:
    if spec is None or kind == KIND_ARRAY:
        return SKIP
    if kind == KIND_STRING:
        return TEXT
    scalar = _scalar_kind(spec)
    return BOOL if scalar == "boolean" else FLOAT if scalar == "float" else INT


def _texts(columns: SampleColumns, rows: npt.NDArray[np.intp]) -> list[Any]:
    return list(columns.text.take(pa.array(rows)).to_pylist())


def _bools(columns: SampleColumns, rows: npt.NDArray[np.intp]) -> list[Any]:
    return list((columns.value[rows] != 0).tolist())


def _floats(columns: SampleColumns, rows: npt.NDArray[np.intp]) -> list[Any]:
    return list(columns.value[rows].astype(np.float64).tolist())


def _ints(columns: SampleColumns, rows: npt.NDArray[np.intp]) -> list[Any]:
    numbers = columns.value[rows].astype(np.float64)
    if len(numbers) and np.isfinite(numbers).all() and np.abs(numbers).max() < 2.0**62:
        return list(np.trunc(numbers).astype(np.int64).tolist())
    return [int(n) for n in numbers.tolist()]  # beyond int64 (or not finite: int() says so)


_CONVERTERS: Final = {TEXT: _texts, BOOL: _bools, FLOAT: _floats, INT: _ints}


def _scalar_kind(spec: Any) -> str:
    if spec is None:
        return ""
    scalar = element_type(spec.datatype)
    return "float" if scalar in ("float", "double") else scalar


@dataclass(frozen=True)
class OutcomeCounts:
    """Samples per (batch, outcome code), and per vehicle: samples, and batches holding at
    least one such sample."""

    per_body: npt.NDArray[np.int64]  # shape (batches, N_CODES)
    samples: npt.NDArray[np.int64]  # shape (vehicles, N_CODES)
    messages: npt.NDArray[np.int64]  # shape (vehicles, N_CODES)


def count_outcomes(
    codes: npt.NDArray[np.uint8],
    body_index: npt.NDArray[np.int32],
    body_lengths: Sequence[int],
    vehicle_of_body: Sequence[int],
    n_vehicles: int,
) -> OutcomeCounts:
    """Count samples per batch and outcome code, then per vehicle."""
    n_bodies = len(vehicle_of_body)
    if not codes.any():  # everything accepted: no pass over the samples needed
        per_body = np.zeros((n_bodies, N_CODES), np.int64)
        per_body[:, ACCEPTED_CODE] = np.asarray(body_lengths, np.int64)
    else:
        per_body = (
            np.bincount(body_index.astype(np.int64) * N_CODES + codes, minlength=n_bodies * N_CODES)
            .reshape(n_bodies, N_CODES)
            .astype(np.int64)
        )
    owner = np.asarray(vehicle_of_body, np.intp)
    samples = np.zeros((n_vehicles, N_CODES), np.int64)
    np.add.at(samples, owner, per_body)
    messages = np.zeros((n_vehicles, N_CODES), np.int64)
    np.add.at(messages, owner, (per_body > 0).astype(np.int64))
    return OutcomeCounts(per_body, samples, messages)


def refused_groups(
    codes: npt.NDArray[np.uint8], body_index: npt.NDArray[np.int32]
) -> list[tuple[int, int, npt.NDArray[np.intp]]]:
    """``(body index, reason code, rows)`` for each batch and dead-letter reason that refused
    samples (not-consented samples are dropped by policy, not dead-lettered)."""
    refused = np.flatnonzero((codes != ACCEPTED_CODE) & (codes != NOT_CONSENTED_CODE))
    if not len(refused):
        return []
    group = body_index[refused].astype(np.int64) * N_CODES + codes[refused]
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.diff(sorted_group, prepend=np.int64(-1)) != 0)
    out = []
    for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
        g = int(sorted_group[start])
        out.append((g // N_CODES, g % N_CODES, refused[order[start:end]]))
    return out


def refused_samples_ipc(
    columns: SampleColumns, groups: Sequence[npt.NDArray[np.intp]], paths: PathTable
) -> list[bytes]:
    """The samples at each of ``groups`` (rows) as an Arrow IPC stream of its own (path as
    plain text, ts, value, text). The micro-batch's refused samples are gathered once, and
    each stream is the schema message, a record batch built over its own part of those
    gathered columns (fresh buffers holding its rows only) and the end-of-stream marker: one
    gather, not one Arrow ``take`` per dead letter. Each stream holds its own samples only
    (a slice of a shared batch would not: serialising it can write its string columns'
    whole buffers, other vehicles' samples of other tenants and regions included)."""
    if not groups:
        return []
    rows = np.concatenate(groups)
    used, inverse = np.unique(columns.path_id[rows], return_inverse=True)
    encoded = [paths.path(i).encode() for i in used.tolist()]
    which = inverse.reshape(-1)
    name_length = np.array([len(n) for n in encoded], np.int32)[which]
    which_list = which.tolist()
    ts = columns.ts_ns[rows]
    value = np.ascontiguousarray(columns.value[rows], np.float64)
    valid = columns.value_valid[rows]
    has_text = columns.text_valid[rows]
    streams, start = [], 0
    for group in groups:
        n = len(group)
        end = start + n
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(name_length[start:end], out=offsets[1:])
        names = b"".join([encoded[w] for w in which_list[start:end]])
        kept = valid[start:end]
        text = (
            columns.text.take(pa.array(group)).cast(pa.utf8())
            if has_text[start:end].any()
            else pa.nulls(n, pa.utf8())
        )
        part = pa.RecordBatch.from_arrays(
            [
                pa.Array.from_buffers(
                    pa.utf8(), n, [None, pa.py_buffer(offsets), pa.py_buffer(names)]
                ),
                pa.Array.from_buffers(_TS_TYPE, n, [None, pa.py_buffer(ts[start:end])]),
                float_array(value[start:end], None if kept.all() else kept),
                text,
            ],
            schema=REFUSED_SAMPLES_SCHEMA,
        )
        start = end
        streams.append(_REFUSED_SCHEMA_MESSAGE + part.serialize().to_pybytes() + _END_OF_STREAM)
    return streams


def read_refused_samples(payload: bytes) -> pa.Table:
    """Read back what :func:`refused_samples_ipc` wrote.

    Raises:
        pyarrow.ArrowInvalid: the bytes are not such a stream (a corrupt row: caller's care).
    """
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
