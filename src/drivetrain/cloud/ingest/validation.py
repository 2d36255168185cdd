"""Judging samples against the VSS catalog, the timestamp window and consent — whole columns
at once (pure: values in, reason codes out).

The wire format carries every sample as ``(path, ts, value, text)`` (docs/wire-format.md):
numbers and booleans in ``value``, strings in ``text``. The rules, per VSS datatype:

- **integers** (``uint8`` … ``int64``): ``value`` set and integral and within the datatype's
  bit width, ``text`` null; **boolean**: ``value`` is 0 or 1; **float**/**double**: ``value``
  finite and within binary32/binary64 range. Otherwise ``wrong_type``.
- **string**: ``text`` set, ``value`` null; otherwise ``wrong_type``.
- **arrays** (``float[]``, ``string[]`` …): ``text`` holds a JSON array, checked element by
  element with the reference check (:func:`drivetrain.core.vss.validation.normalise_value`) —
  the only per-sample Python, and only for the rare array signals.
- then ``min``/``max`` (inclusive) and ``allowed`` values: ``out_of_range``.
- ``ts`` before the window (before 2000-01-01, or older than the maximum sample age at
  receipt): ``timestamp_too_old``; later than receipt plus the allowed clock skew:
  ``timestamp_in_future``.
- a valid sample whose privacy category the vehicle's consent does not cover:
  ``not_consented``.

Each distinct path is looked up in the catalog once (:class:`PathTable`); per sample, only
NumPy gathers and comparisons run. A sample gets the first reason that applies, in
:data:`drivetrain.cloud.ingest.reasons.SAMPLE_REASONS` order, then ``not_consented``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.cloud.ingest.reasons import (
    ACCEPTED_CODE,
    NOT_CONSENTED_CODE,
    SAMPLE_REASON_CODES,
    SampleReason,
)
from drivetrain.core.errors import BadInputError, SignalRangeError
from drivetrain.core.vss import Catalog, SignalSpec
from drivetrain.core.vss.datatypes import FLOAT_LIMITS, INTEGER_BOUNDS, element_type, is_array
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES, PrivacyCategory
from drivetrain.core.vss.validation import normalise_value

#: Path dictionaries whose ids a :class:`PathTable` keeps (see ``dictionary_ids``).
MAX_CACHED_DICTIONARIES: Final = 2048
#: No vehicle measured anything before this instant (2000-01-01T00:00:00Z), whatever the
#: configured sample age: a timestamp from 1970 is an unset clock, not old data.
EARLIEST_TS_NS: Final = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000

# Kinds of path, as stored per path id.
KIND_UNKNOWN: Final = 0
KIND_NUMBER: Final = 1  # float, double, integers and boolean: carried in ``value``
KIND_STRING: Final = 2  # carried in ``text``
KIND_ARRAY: Final = 3  # carried in ``text`` as a JSON array

_UNKNOWN = SAMPLE_REASON_CODES["unknown_path"]
_WRONG_TYPE = SAMPLE_REASON_CODES["wrong_type"]
_OUT_OF_RANGE = SAMPLE_REASON_CODES["out_of_range"]
_TOO_OLD = SAMPLE_REASON_CODES["timestamp_too_old"]
_IN_FUTURE = SAMPLE_REASON_CODES["timestamp_in_future"]
_CATEGORY_BITS: Final[dict[PrivacyCategory, int]] = {
    c: 1 << i for i, c in enumerate(PRIVACY_CATEGORIES)
}


@dataclass(frozen=True, slots=True)
class TimestampWindow:
    """Which sample timestamps are plausible, relative to the receiver's clock.

    Attributes:
        max_age_ns: samples measured longer ago than this at receipt are ``timestamp_too_old``.
        max_ahead_ns: samples more than this ahead of the receiver's clock are
            ``timestamp_in_future`` (vehicle clocks drift; a small skew is tolerated).
    """

    max_age_ns: int
    max_ahead_ns: int

    def __post_init__(self) -> None:
        if self.max_age_ns <= 0 or self.max_ahead_ns < 0:
            raise ValueError(
                f"timestamp window needs max_age_ns > 0 and max_ahead_ns >= 0, got "
                f"{self.max_age_ns} and {self.max_ahead_ns}"
            )

    @classmethod
    def of_seconds(cls, max_age_s: float, max_ahead_s: float) -> TimestampWindow:
        """A window from seconds (as the settings give them)."""
        return cls(int(max_age_s * 1e9), int(max_ahead_s * 1e9))

    def bounds(self, now_ns: int) -> tuple[int, int]:
        """Inclusive ``(earliest, latest)`` timestamps accepted at ``now_ns`` (ns since epoch)."""
        return max(EARLIEST_TS_NS, now_ns - self.max_age_ns), now_ns + self.max_ahead_ns


def consent_bits(categories: Iterable[PrivacyCategory]) -> int:
    """A vehicle's consented categories as a bit set (bit i = ``PRIVACY_CATEGORIES[i]``)."""
    bits = 0
    for category in categories:
        bits |= _CATEGORY_BITS[category]
    return bits


class PathTable:
    """Every distinct path seen so far, with its validation parameters in NumPy arrays.

    A path is looked up in the catalog the first time it appears; afterwards a sample's
    parameters are one gather by path id. Unknown paths get an id too (kind unknown), so a
    batch can name them in its dead letters. Not thread-safe: one per pipeline.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._ids: dict[str, int] = {}
        self._dictionary_ids: dict[tuple[int, ...], tuple[pa.Array, npt.NDArray[np.int32]]] = {}
        self._paths: list[str] = []
        self._specs: list[SignalSpec | None] = []
        self._capacity = 0
        self.kind = np.zeros(0, np.int8)
        self.type_low = np.zeros(0, np.float64)
        self.type_high = np.zeros(0, np.float64)
        self.integral = np.zeros(0, np.bool_)
        self.low = np.zeros(0, np.float64)
        self.high = np.zeros(0, np.float64)
        self.category = np.zeros(0, np.uint8)
        self.has_allowed = np.zeros(0, np.bool_)
        # The fast pass: datatype and min/max bounds in one; empty (+inf, -inf) for paths
        # whose samples always take the rule-by-rule path (unknown, strings, arrays, allowed).
        self.fast_low = np.zeros(0, np.float64)
        self.fast_high = np.zeros(0, np.float64)

    def __len__(self) -> int:
        return len(self._paths)

    def path(self, path_id: int) -> str:
        """The path with id ``path_id``."""
        return self._paths[path_id]

    @property
    def paths(self) -> Sequence[str]:
        """Every path by id."""
        return self._paths

    def spec(self, path_id: int) -> SignalSpec | None:
        """The catalog entry of ``path_id``, or None for a path the catalog does not know."""
        return self._specs[path_id]

    def dictionary_ids(self, dictionary: pa.Array) -> npt.NDArray[np.int32]:
        """The ids of a path dictionary's entries, then the id of the null path ``""`` (for
        null indices). Answers are kept per dictionary in memory (its buffers' addresses,
        held with the answer so that no other array can take them meanwhile): the wire
        decoder hands out the same array for the same dictionary bytes, so a dictionary a
        vehicle repeats costs a lookup, not a string per path."""
        key = (dictionary.offset, len(dictionary),
               *(b.address if b is not None else 0 for b in dictionary.buffers()))  # fmt: skip
        cached = self._dictionary_ids.get(key)
        if cached is not None:
            return cached[1]
        ids = self.ids_for([*dictionary.to_pylist(), None])
        if len(self._dictionary_ids) >= MAX_CACHED_DICTIONARIES:
            self._dictionary_ids.clear()
        self._dictionary_ids[key] = (dictionary, ids)
        return ids

    def ids_for(self, paths: Sequence[str | None]) -> npt.NDArray[np.int32]:
        """The ids of ``paths`` (a dictionary's values), registering new ones.

        A null dictionary entry is registered as the (unknown) path ``""``.
        """
        out = np.empty(len(paths), np.int32)
        for i, path in enumerate(paths):
            key = path if isinstance(path, str) else ""
            found = self._ids.get(key)
            out[i] = self._register(key) if found is None else found
        return out

    def _register(self, path: str) -> int:
        path_id = len(self._paths)
        spec = self.catalog.get(path) if path in self.catalog else None
        self._ids[path] = path_id
        self._paths.append(path)
        self._specs.append(spec)
        if path_id >= self._capacity:
            self._grow(max(64, 2 * self._capacity))
        self._fill(path_id, spec)
        return path_id

    def _grow(self, capacity: int) -> None:
        def grown(array: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
            bigger = np.zeros(capacity, array.dtype)
            bigger[: len(array)] = array
            return bigger

        self.kind = grown(self.kind)  # type: ignore[assignment]
        self.type_low = grown(self.type_low)  # type: ignore[assignment]
        self.type_high = grown(self.type_high)  # type: ignore[assignment]
        self.integral = grown(self.integral)  # type: ignore[assignment]
        self.low = grown(self.low)  # type: ignore[assignment]
        self.high = grown(self.high)  # type: ignore[assignment]
        self.category = grown(self.category)  # type: ignore[assignment]
        self.has_allowed = grown(self.has_allowed)  # type: ignore[assignment]
        self.fast_low = grown(self.fast_low)  # type: ignore[assignment]
        self.fast_high = grown(self.fast_high)  # type: ignore[assignment]
        self._capacity = capacity

    def _fill(self, i: int, spec: SignalSpec | None) -> None:
        self.fast_low[i], self.fast_high[i] = math.inf, -math.inf
        if spec is None:
            self.kind[i] = KIND_UNKNOWN
            return
        self.category[i] = PRIVACY_CATEGORIES.index(spec.privacy_category)
        self.has_allowed[i] = spec.allowed is not None
        self.low[i] = -math.inf if spec.minimum is None else float(spec.minimum)
        self.high[i] = math.inf if spec.maximum is None else float(spec.maximum)
        scalar = element_type(spec.datatype)
        if is_array(spec.datatype):
            self.kind[i] = KIND_ARRAY
        elif scalar == "string":
            self.kind[i] = KIND_STRING
        elif scalar == "boolean":
            self.kind[i] = KIND_NUMBER
            self.type_low[i], self.type_high[i], self.integral[i] = 0.0, 1.0, True
        elif scalar in INTEGER_BOUNDS:
            low, high = INTEGER_BOUNDS[scalar]
            self.kind[i] = KIND_NUMBER
            # ``high + 1`` is a power of two, exact in binary64; the largest double below it
            # is the exact upper bound for integral values (no rounding up past the width).
            self.type_low[i] = float(low)
            self.type_high[i] = float(np.nextafter(float(high + 1), -math.inf))
            self.integral[i] = True
        else:
            limit = FLOAT_LIMITS[scalar]
            self.kind[i] = KIND_NUMBER
            self.type_low[i], self.type_high[i] = -limit, limit
        if self.kind[i] == KIND_NUMBER and spec.allowed is None:
            self.fast_low[i] = max(self.type_low[i], self.low[i])
            self.fast_high[i] = min(self.type_high[i], self.high[i])


@dataclass(frozen=True)
class SampleColumns:
    """The samples of a micro-batch as flat columns (one entry per sample).

    Attributes:
        vehicle: index of the sample's vehicle in the micro-batch's vehicle list.
        path_id: the sample's path id in the pipeline's :class:`PathTable`.
        ts_ns: measurement time, ns since the Unix epoch (UTC).
        value: numeric value (NaN where null).
        value_valid: False where ``value`` is null.
        text: string values (a pyarrow string array; null where not set).
        text_valid: False where ``text`` is null.
    """

    vehicle: npt.NDArray[np.int32]
    path_id: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    value_valid: npt.NDArray[np.bool_]
    text: pa.Array
    text_valid: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ts_ns)

    def subset(self, rows: npt.NDArray[np.intp]) -> SampleColumns:
        """The samples at ``rows``, in that order."""
        return SampleColumns(
            vehicle=self.vehicle[rows],
            path_id=self.path_id[rows],
            ts_ns=self.ts_ns[rows],
            value=self.value[rows],
            value_valid=self.value_valid[rows],
            text=self.text.take(pa.array(rows)),
            text_valid=self.text_valid[rows],
        )


def judge_samples(
    columns: SampleColumns,
    table: PathTable,
    vehicle_consent: npt.NDArray[np.uint8],
    ts_bounds: tuple[int, int],
) -> npt.NDArray[np.uint8]:
    """One reason code per sample: 0 accepted, else a ``SAMPLE_REASON_CODES`` value or
    ``NOT_CONSENTED_CODE``.

    One pass with each path's combined bounds (its datatype's and its min/max) finds the
    samples that are certainly valid numbers with plausible times; only the others — strings,
    arrays, allowed-value sets, and whatever breaks a rule — are judged reason by reason.

    Args:
        columns: the samples.
        table: the path table the ``path_id`` values index.
        vehicle_consent: per vehicle index, its consent bit set (see :func:`consent_bits`).
        ts_bounds: inclusive ``(earliest, latest)`` timestamps in ns (``TimestampWindow.bounds``).
    """
    pid = columns.path_id
    v = columns.value
    earliest, latest = ts_bounds
    with np.errstate(invalid="ignore"):  # NaN (and null) values fail the bounds: judged below
        ok = (v >= table.fast_low.take(pid)) & (v <= table.fast_high.take(pid))
        ok &= (v == np.floor(v)) | ~table.integral.take(pid)
    if columns.text_valid.any():
        ok &= ~columns.text_valid
    ts = columns.ts_ns
    ok &= (ts >= earliest) & (ts <= latest)
    code = np.zeros(len(pid), np.uint8)
    rest = np.flatnonzero(~ok)
    if len(rest):
        code[rest] = _judge_each_rule(columns.subset(rest), table, ts_bounds)
    distinct = np.unique(vehicle_consent)
    if len(distinct) == 1:  # one consent for every vehicle: one gather by path
        allowed_paths = (int(distinct[0]) >> table.category[: len(table)]) & 1
        refused = allowed_paths.take(pid) == 0
    else:
        refused = ((vehicle_consent.take(columns.vehicle) >> table.category.take(pid)) & 1) == 0
    code[refused & (code == ACCEPTED_CODE)] = NOT_CONSENTED_CODE
    return code


def _judge_each_rule(
    columns: SampleColumns, table: PathTable, ts_bounds: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    """Reason codes (without consent) for samples the fast pass could not accept."""
    pid = columns.path_id
    v = columns.value
    kind = table.kind.take(pid)
    with np.errstate(invalid="ignore"):
        numeric_ok = (v >= table.type_low.take(pid)) & (v <= table.type_high.take(pid))
        numeric_ok &= ~table.integral.take(pid) | (v == np.floor(v))
        in_range = (v >= table.low.take(pid)) & (v <= table.high.take(pid))
    is_string = kind == KIND_STRING
    text_only = columns.text_valid & ~columns.value_valid
    type_ok = np.where(is_string, text_only, numeric_ok & ~columns.text_valid)
    # Strings have no min/max; array samples are judged row by row below, after the
    # timestamp checks, so here they pass type and range.
    is_array_row = kind == KIND_ARRAY
    type_ok |= is_array_row
    in_range |= is_string | is_array_row
    code = np.zeros(len(pid), np.uint8)
    earliest, latest = ts_bounds
    ts = columns.ts_ns
    code[ts > latest] = _IN_FUTURE
    code[ts < earliest] = _TOO_OLD
    code[~in_range] = _OUT_OF_RANGE
    code[~type_ok] = _WRONG_TYPE
    _judge_allowed_and_arrays(columns, table, kind, is_array_row, code)
    code[kind == KIND_UNKNOWN] = _UNKNOWN
    return code


def _judge_allowed_and_arrays(
    columns: SampleColumns,
    table: PathTable,
    kind: npt.NDArray[np.int8],
    is_array_row: npt.NDArray[np.bool_],
    code: npt.NDArray[np.uint8],
) -> None:
    """Allowed-value sets and array signals: only the (few) rows of such paths, per path."""
    special = np.flatnonzero(
        (table.has_allowed.take(columns.path_id) & (code == ACCEPTED_CODE)) | is_array_row
    )
    if not len(special):
        return
    pids = columns.path_id[special]
    for path_id in np.unique(pids):
        rows = special[pids == path_id]
        spec = table.spec(int(path_id))
        if spec is None:
            continue
        if table.kind[path_id] == KIND_ARRAY:
            _judge_array_rows(spec, columns, rows, code)
        elif table.kind[path_id] == KIND_STRING:
            allowed = pa.array([a for a in spec.allowed or () if isinstance(a, str)], pa.utf8())
            ok = pc.is_in(columns.text.take(pa.array(rows)), value_set=allowed)
            bad = rows[~np.asarray(ok.fill_null(False))]
            code[bad[code[bad] == ACCEPTED_CODE]] = _OUT_OF_RANGE
        else:
            allowed_numbers = np.array(
                [float(a) for a in spec.allowed or () if not isinstance(a, str)], np.float64
            )
            bad = rows[~np.isin(columns.value[rows], allowed_numbers)]
            code[bad[code[bad] == ACCEPTED_CODE]] = _OUT_OF_RANGE


def _judge_array_rows(
    spec: SignalSpec,
    columns: SampleColumns,
    rows: npt.NDArray[np.intp],
    code: npt.NDArray[np.uint8],
) -> None:
    texts = columns.text.take(pa.array(rows)).to_pylist()
    for row, text in zip(rows.tolist(), texts, strict=True):
        reason = array_sample_reason(spec, text, bool(columns.value_valid[row]))
        if reason is not None:  # type and range come before a timestamp reason
            code[row] = SAMPLE_REASON_CODES[reason]


def array_sample_reason(spec: SignalSpec, text: str | None, value_set: bool) -> SampleReason | None:
    """The type/range reason of one array-signal sample (JSON array in ``text``), or None."""
    if text is None or value_set:
        return "wrong_type"
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return "wrong_type"
    if not isinstance(items, list):
        return "wrong_type"
    try:
        normalise_value(spec, items)
    except SignalRangeError:
        return "out_of_range"
    except BadInputError:
        return "wrong_type"
    return None


def explain_sample(
    spec: SignalSpec | None,
    path: str,
    reason: SampleReason,
    *,
    ts_ns: int,
    value: float | None,
    text: str | None,
    ts_bounds: tuple[int, int],
) -> str:
    """A sentence saying exactly why one sample was refused (for dead-letter details).

    Uses the catalog's reference check for type and range, so the wording matches
    ``drivetrain vss validate``.
    """
    if reason == "unknown_path" or spec is None:
        return f"unknown VSS path {path!r}"
    if reason in ("timestamp_too_old", "timestamp_in_future"):
        earliest, latest = ts_bounds
        when = _iso(ts_ns)
        if reason == "timestamp_too_old":
            return f"{path}: timestamp {when} is before the accepted window start {_iso(earliest)}"
        return f"{path}: timestamp {when} is after the accepted window end {_iso(latest)}"
    given = _given(spec, value, text)
    if value is not None and text is not None:
        return f"{path}: both value {value!r} and text {text!r} are set; expected exactly one"
    try:
        normalise_value(spec, given)
    except BadInputError as e:
        return str(e)
    return f"{path}: value {given!r} is not valid for VSS {spec.datatype}"


def _given(spec: SignalSpec, value: float | None, text: str | None) -> object:
    """The sample as the reference check should see it (the wire's float as its VSS form)."""
    scalar = element_type(spec.datatype)
    if is_array(spec.datatype):
        try:
            return json.loads(text) if text is not None else value
        except json.JSONDecodeError:
            return text
    if text is not None:
        return text
    if value is None:
        return None
    if scalar == "boolean":
        return {0.0: False, 1.0: True}.get(value, value)
    return value


def _iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    try:
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
    return f"{stamp}.{rest // 1_000_000:03d}Z"


def consent_array(
    vins: Sequence[str], consents: Mapping[str, Iterable[PrivacyCategory]]
) -> npt.NDArray[np.uint8]:
    """Per vehicle index, its consent bit set (vehicles missing from ``consents``: none)."""
    return np.array([consent_bits(consents.get(vin, ())) for vin in vins], np.uint8)
