"""Checking and shaping a telemetry table for the lake: pure, vectorised, no I/O.

``normalize_rows`` turns what a caller hands to ``Lake.append`` into a table of exactly
``LAKE_SCHEMA`` (dictionary-encoded strings with one entry per distinct value), or raises
:class:`TelemetrySchemaError` naming the column and what was expected — before anything is
written. ``split_for_append`` then drops the rows of already-committed batch ids and cuts the
rest into one slice per UTC date. No per-row Python anywhere: work per row is Arrow or NumPy,
work per distinct value (paths, vehicles, batch ids) may be Python.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.cloud.lake.models import (
    LAKE_COLUMNS,
    LAKE_SCHEMA,
    MAX_TS_NS,
    MIN_TS_NS,
    NS_PER_DAY,
    day_of_ns,
)
from drivetrain.core.errors import TelemetrySchemaError
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, privacy_category_for

_BATCH_ID: Final = re.compile(r"^[0-9a-f]{32}$")
#: A collection campaign's id (``drivetrain.edge.campaigns``).
_CAMPAIGN: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VEHICLE: Final = re.compile(r"^[0-9A-Za-z._:-]{1,128}$")
_PATH: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_MAX_PATH_CHARS: Final = 512
_MAX_DIMENSIONS_CHARS: Final = 4096
_UTC_NAMES: Final = frozenset({"UTC", "utc", "Etc/UTC", "+00:00", "Z", "GMT"})
_TS_TYPE: Final = pa.timestamp("ns", tz="UTC")
#: The campaign and dimensions columns: nullable strings as dictionaries.
_PER_BATCH_TYPE: Final = pa.dictionary(pa.int16(), pa.utf8())


@dataclass(frozen=True, slots=True)
class DaySlice:
    """The rows of one append that fall on one UTC date, with their statistics."""

    day: date
    table: pa.Table
    min_ts_ns: int
    max_ts_ns: int
    categories: dict[str, int]
    #: the vehicle key the slice is encrypted under (encrypted lake only; crypto.py)
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Rows and date span of one batch id within an append."""

    batch_id: str
    rows: int
    first_day: date
    last_day: date


@dataclass(frozen=True, slots=True)
class AppendPlan:
    """An append cut to size: the day slices to write, the batches they hold, and the
    batches skipped as already committed (with their row count)."""

    slices: tuple[DaySlice, ...]
    batches: tuple[BatchStats, ...]
    skipped_batches: tuple[str, ...]
    skipped_rows: int


def _bad(column: str, message: str) -> TelemetrySchemaError:
    return TelemetrySchemaError(f"column {column!r}: {message}")


def _compact_dictionary(
    column: str, array: pa.Array, index_type: pa.DataType
) -> pa.DictionaryArray:
    """``array`` (strings or a dictionary of strings) as a dictionary of ``index_type`` whose
    entries are distinct and all used."""
    if pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type.value_type)
                or pa.types.is_large_string(array.type.value_type)):
            raise _bad(column, f"dictionary of {array.type.value_type}; expected strings")
        indices = array.indices.to_numpy(zero_copy_only=False)
        values = _utf8(array.dictionary)
        used = np.bincount(indices, minlength=len(values)) > 0 if len(indices) else np.zeros(
            len(values), dtype=bool)
        distinct = pc.count_distinct(values, mode="all").as_py()
        if used.all() and distinct == len(values):
            if array.type.index_type == index_type and len(used) == len(values):
                # Already compact, with every index inside the dictionary (bincount refuses
                # a negative one; a larger one would lengthen ``used``): kept as it is.
                return pa.DictionaryArray.from_arrays(array.indices, values)
            dictionary, codes = values, indices.astype(np.int64, copy=False)
        else:
            keep = values.filter(pa.array(used))
            dictionary = pc.unique(keep)
            lookup = pc.index_in(values, value_set=dictionary).to_numpy(zero_copy_only=False)
            codes = np.nan_to_num(lookup, nan=0).astype(np.int64)[indices]
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        encoded = pc.dictionary_encode(array.cast(pa.utf8()))
        dictionary = encoded.dictionary
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    else:
        raise _bad(column, f"type {array.type}; expected utf8 strings")
    limit = np.iinfo(index_type.to_pandas_dtype()).max
    if len(dictionary) > limit:
        raise _bad(column, f"{len(dictionary)} distinct values in one table; expected at most "
                           f"{limit}")
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(index_type.to_pandas_dtype(), copy=False), type=index_type),
        dictionary,
    )


_CATEGORY_CODE: Final = {c: i for i, c in enumerate(PRIVACY_CATEGORIES)}


@functools.lru_cache(maxsize=16_384)
def _path_category(path: str) -> int | None:
    """The privacy category (its index) the rule gives ``path``, or None when ``path`` is
    not a VSS path; asked for every path of every append (a fleet sends the same few
    hundred), so remembered."""
    if len(path) > _MAX_PATH_CHARS or not _PATH.match(path):
        return None
    return _CATEGORY_CODE[privacy_category_for(path)]


def _utf8(array: pa.Array) -> pa.Array:
    """``array`` (strings) as utf8, cast only when it is not already (a cast of a short
    dictionary costs more than its values)."""
    return array if array.type == pa.utf8() else array.cast(pa.utf8())


def _check_values(column: str, dictionary: pa.Array, pattern: re.Pattern[str], what: str) -> None:
    for value in dictionary.to_pylist():
        if not isinstance(value, str) or not pattern.match(value):
            raise _bad(column, f"value {value!r} is not {what}")


def _timestamps(array: pa.Array) -> pa.Array:
    if not pa.types.is_timestamp(array.type):
        raise _bad("ts", f"type {array.type}; expected timestamp[ns, tz=UTC]")
    if array.type.tz is None:
        raise _bad("ts", "timestamps without a timezone; expected timestamp[ns, tz=UTC]")
    if array.type.tz not in _UTC_NAMES:
        raise _bad("ts", f"timezone {array.type.tz!r}; expected UTC")
    if array.type == _TS_TYPE:
        return array
    try:
        return array.cast(_TS_TYPE)
    except pa.ArrowInvalid as e:
        raise _bad("ts", f"cannot be held in nanoseconds: {e}") from e


def _plain(column: str, array: pa.Array, type_: pa.DataType) -> pa.Array:
    if array.type == type_:
        return array
    try:
        if type_ == pa.float64() and not (pa.types.is_integer(array.type)
                                          or pa.types.is_floating(array.type)
                                          or pa.types.is_boolean(array.type)
                                          or pa.types.is_null(array.type)):
            raise pa.ArrowInvalid("not numeric")
        if type_ == pa.utf8() and not (pa.types.is_string(array.type)
                                       or pa.types.is_large_string(array.type)
                                       or pa.types.is_null(array.type)):
            raise pa.ArrowInvalid("not a string")
        return array.cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise _bad(column, f"type {array.type}; expected {type_} ({e})") from e


def normalize_rows(table: pa.Table) -> pa.Table:
    """``table`` checked and converted to exactly ``LAKE_SCHEMA``.

    Checks: the columns are exactly the lake's (a table without ``campaign`` or
    ``dimensions`` gets it, all null); dimensions JSON objects of strings (at most
    4,096 characters); no nulls in vehicle, path, ts, category,
    batch_id; vehicle a pseudonym (1-128 of ``[0-9A-Za-z._:-]``), path a VSS path, category
    the privacy category the rule assigns to the path, batch_id 32 lower-case hex digits;
    ts a UTC timestamp in [1990, 2100); at most one of value/text per row.

    Raises:
        TelemetrySchemaError: the first check that fails, naming the column and the value.
    """
    if not isinstance(table, pa.Table):
        raise TypeError(f"expected a pyarrow.Table, got {type(table).__name__}")
    for optional in ("campaign", "dimensions"):  # a writer that records no campaigns
        if optional not in table.column_names:
            table = table.append_column(optional, pa.nulls(table.num_rows, pa.utf8()))
    names = set(table.column_names)
    missing = [c for c in LAKE_COLUMNS if c not in names]
    extra = sorted(names - set(LAKE_COLUMNS))
    if missing or extra or len(table.column_names) != len(names):
        raise TelemetrySchemaError(
            f"table columns {table.column_names}: missing {missing}, unexpected {extra}; "
            f"expected exactly {list(LAKE_COLUMNS)}"
        )
    table = table.combine_chunks()
    n = table.num_rows

    def column(name: str) -> pa.Array:
        chunked = table.column(name)
        return chunked.chunk(0) if chunked.num_chunks == 1 else pa.concat_arrays(chunked.chunks)

    for name in ("vehicle", "path", "ts", "category", "batch_id"):
        if n and table.column(name).null_count:
            raise _bad(name, f"{table.column(name).null_count} null values; expected none")

    vehicle = _compact_dictionary("vehicle", column("vehicle"), pa.int32())
    path = _compact_dictionary("path", column("path"), pa.int16())
    category = _compact_dictionary("category", column("category"), pa.int8())
    batch_id = _compact_dictionary("batch_id", column("batch_id"), pa.int32())
    ts = _timestamps(column("ts"))
    value = _plain("value", column("value"), pa.float64())
    text = _plain("text", column("text"), pa.utf8())
    campaign = _campaigns(column("campaign"))
    dimensions = _dimensions(column("dimensions"))

    _check_values("vehicle", vehicle.dictionary, _VEHICLE,
                  "a vehicle pseudonym (1-128 of letters, digits, '.', '_', ':', '-')")
    _check_values("batch_id", batch_id.dictionary, _BATCH_ID, "32 lower-case hex digits")
    paths = path.dictionary.to_pylist()
    path_codes = [_path_category(p) for p in paths]
    for p, code in zip(paths, path_codes, strict=True):
        if code is None:
            raise _bad("path", f"value {p!r} is not a VSS path (e.g. 'Vehicle.Speed')")
    given = category.dictionary.to_pylist()
    for c in given:
        if c not in PRIVACY_CATEGORIES:
            raise _bad("category", f"value {c!r} is not a privacy category; expected one of "
                                   f"{', '.join(PRIVACY_CATEGORIES)}")
    if n:
        # The category must be the one the rule gives the path: retention and consent key on it.
        expected = np.array(path_codes, dtype=np.int8)
        given_codes = np.array([_CATEGORY_CODE[c] for c in given], dtype=np.int8)
        path_idx = path.indices.to_numpy(zero_copy_only=False)
        cat_idx = category.indices.to_numpy(zero_copy_only=False)
        wrong = np.flatnonzero(expected[path_idx] != given_codes[cat_idx])
        if len(wrong):
            row = int(wrong[0])
            p = paths[path_idx[row]]
            raise _bad("category", f"row {row}: {given[cat_idx[row]]!r} for path {p!r}; "
                                   f"expected {privacy_category_for(p)!r} ({len(wrong)} rows differ)")

        ts_ns = ts.view(pa.int64()).to_numpy(zero_copy_only=False)
        low, high = int(ts_ns.min()), int(ts_ns.max())
        if low < MIN_TS_NS or high >= MAX_TS_NS:
            bad = low if low < MIN_TS_NS else high
            raise _bad("ts", f"timestamp {day_of_ns(bad).isoformat()} (ns {bad}) is outside "
                             "[1990-01-01, 2100-01-01) UTC; is the vehicle clock set?")
        if value.null_count < n and text.null_count < n:
            both = pc.sum(pc.and_(value.is_valid(), text.is_valid())).as_py() or 0
            if both:
                raise _bad("text", f"{both} rows have both a value and a text; expected at most "
                                   "one of value/text per row")
    return pa.Table.from_arrays(
        [vehicle, path, ts, value, text, category, batch_id, campaign, dimensions],
        schema=LAKE_SCHEMA,
    )


def _all_null_strings(array: pa.Array) -> bool:
    """Whether ``array`` is nulls only, of a type the per-batch columns accept."""
    return array.null_count == len(array) and (
        pa.types.is_null(array.type) or array.type in (pa.utf8(), pa.large_utf8())
        or array.type == _PER_BATCH_TYPE)


def _campaigns(array: pa.Array) -> pa.Array:
    """The nullable campaign column as ``dictionary<int16, utf8>`` of campaign ids."""
    if _all_null_strings(array):  # a batch of no campaign: nothing to check
        return pa.nulls(len(array), _PER_BATCH_TYPE)
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_null(array.type):
        array = array.cast(pa.utf8())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise _bad("campaign", f"type {array.type}; expected utf8 campaign ids")
    encoded = pc.dictionary_encode(array.cast(pa.utf8()))
    _check_values("campaign", encoded.dictionary, _CAMPAIGN,
                  "a campaign id (1-64 of a-z, 0-9, '_', '.', '-')")
    if len(encoded.dictionary) > np.iinfo(np.int16).max:
        raise _bad("campaign", f"{len(encoded.dictionary)} distinct campaigns in one table")
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(pa.int16()), encoded.dictionary)


def _dimensions(array: pa.Array) -> pa.Array:
    """The nullable dimensions column as ``dictionary<int16, utf8>`` of JSON objects whose
    values are strings or null."""
    if _all_null_strings(array):
        return pa.nulls(len(array), _PER_BATCH_TYPE)
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_null(array.type):
        array = array.cast(pa.utf8())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise _bad("dimensions", f"type {array.type}; expected utf8 JSON objects")
    encoded = pc.dictionary_encode(array.cast(pa.utf8()))
    for text in encoded.dictionary.to_pylist():
        if len(text) > _MAX_DIMENSIONS_CHARS:
            raise _bad("dimensions", f"a value of {len(text)} characters; at most "
                                     f"{_MAX_DIMENSIONS_CHARS}")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(v, str | None) for v in parsed.values()
        ):
            raise _bad("dimensions", f"value {text[:80]!r} is not a JSON object of strings")
    if len(encoded.dictionary) > np.iinfo(np.int16).max:
        raise _bad("dimensions", f"{len(encoded.dictionary)} distinct values in one table")
    return pa.DictionaryArray.from_arrays(encoded.indices.cast(pa.int16()), encoded.dictionary)


def split_for_append(table: pa.Table, committed: Collection[str]) -> AppendPlan:
    """Cut a normalised ``table`` into day slices, leaving out batch ids in ``committed``."""
    batch_col = table.column("batch_id").chunk(0) if table.num_rows else None
    if batch_col is None:
        return AppendPlan((), (), (), 0)
    batch_ids = batch_col.dictionary.to_pylist()
    batch_idx = batch_col.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(batch_idx, minlength=len(batch_ids))
    skip = np.array([b in committed for b in batch_ids], dtype=bool)
    skipped_rows = int(counts[skip].sum())
    if skip.any():
        keep_mask = ~skip[batch_idx]
        table = table.filter(pa.array(keep_mask))
        batch_col = table.column("batch_id").chunk(0) if table.num_rows else None
        batch_idx = (batch_col.indices.to_numpy(zero_copy_only=False)
                     if batch_col is not None else np.empty(0, np.int32))
    skipped = tuple(sorted(b for b, s in zip(batch_ids, skip) if s))
    if table.num_rows == 0:
        return AppendPlan((), (), skipped, skipped_rows)

    ts_ns = table.column("ts").chunk(0).view(pa.int64()).to_numpy(zero_copy_only=False)
    days = ts_ns // NS_PER_DAY
    first, last = int(days.min()), int(days.max())
    slices: list[DaySlice] = []
    if first == last:
        slices.append(_slice(table, ts_ns, first))
    else:
        order = np.argsort(days, kind="stable")
        sorted_days = days[order]
        bounds = np.flatnonzero(np.diff(sorted_days)) + 1
        for part in np.split(order, bounds):
            day = int(days[part[0]])
            slices.append(_slice(table.take(pa.array(part)), ts_ns[part], day))

    # Per batch id: rows and first/last day, from one pass over (batch, day) pairs.
    n_batches = len(batch_ids)
    rows_per_batch = np.bincount(batch_idx, minlength=n_batches)
    first_day = np.full(n_batches, np.iinfo(np.int64).max, dtype=np.int64)
    last_day = np.full(n_batches, np.iinfo(np.int64).min, dtype=np.int64)
    if first == last:
        present = rows_per_batch > 0
        first_day[present] = first
        last_day[present] = first
    else:
        pairs = np.unique(batch_idx.astype(np.int64) * (last - first + 1) + (days - first))
        pair_batch, pair_day = pairs // (last - first + 1), pairs % (last - first + 1) + first
        np.minimum.at(first_day, pair_batch, pair_day)
        np.maximum.at(last_day, pair_batch, pair_day)
    epoch = date(1970, 1, 1)
    batches = tuple(
        BatchStats(batch_ids[i], int(rows_per_batch[i]),
                   date.fromordinal(epoch.toordinal() + int(first_day[i])),
                   date.fromordinal(epoch.toordinal() + int(last_day[i])))
        for i in np.flatnonzero(rows_per_batch)
    )
    return AppendPlan(tuple(slices), batches, skipped, skipped_rows)


def _slice(table: pa.Table, ts_ns: npt.NDArray[np.int64], day: int) -> DaySlice:
    category = table.column("category").chunk(0) if table.column("category").num_chunks == 1 \
        else pa.concat_arrays(table.column("category").chunks)
    counts = np.bincount(category.indices.to_numpy(zero_copy_only=False),
                         minlength=len(category.dictionary))
    names = category.dictionary.to_pylist()
    return DaySlice(
        day=day_of_ns(day * NS_PER_DAY),
        table=table,
        min_ts_ns=int(ts_ns.min()),
        max_ts_ns=int(ts_ns.max()),
        categories={names[i]: int(counts[i]) for i in np.flatnonzero(counts)},
    )
