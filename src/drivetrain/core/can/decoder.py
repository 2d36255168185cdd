"""The batch CAN decoder: whole arrays of frames to signal values, agreeing with cantools.

:class:`BatchDecoder` groups a :class:`~drivetrain.core.can.frames.FrameBatch` by
``(frame_id, is_extended)``, decodes every signal of all frames of a message at once with
NumPy (see :mod:`drivetrain.core.can.bitfields`), and returns one row per signal value,
grouped by message, then by signal, and in capture order within each signal: each signal's
time series is one contiguous run (sort by ``timestamp_s`` for a single time line).

Agreement with cantools' ``Message.decode(data, decode_choices=False, allow_truncated=True)``:

* values are equal (as float64; NaN where cantools returns NaN) and the same signals appear;
* frames shorter than the DBC length are decoded partially, as with ``allow_truncated=True``
  (signals that do not fit are left out) and counted in ``DecodeReport.truncated_frames``;
  bytes past the DBC length are ignored, as cantools does by default;
* a multiplexed frame whose multiplexer value has no branch is refused as cantools refuses it
  (no values) and counted in ``DecodeReport.rejected_frames``;
* frames whose id the DBC does not define are counted in ``DecodeReport.unknown_frames``.

Where cantools itself cannot decode a message (signals that overlap within one multiplexer
branch, or that reach past the message end, loaded with ``strict=False``), this decoder still
reads each signal at its declared bits; signals past the message end are never emitted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database, Message

from drivetrain.core.can.bitfields import (
    physical_values,
    physical_values_from_words,
    raw_fields,
    raw_fields_from_words,
)
from drivetrain.core.can.buffers import BufferPool
from drivetrain.core.can.dbc_tokens import MAX_STANDARD_ID
from drivetrain.core.can.decode_plan import MessagePlan, build_plan
from drivetrain.core.can.frames import DecodedSignals, FrameBatch
from drivetrain.core.errors import NotFoundError


class FrameKey(NamedTuple):
    """A CAN identifier as it appears on the bus: the id and whether it is 29-bit extended."""

    frame_id: int
    is_extended: bool

    def __str__(self) -> str:
        return f"0x{self.frame_id:08X}x" if self.is_extended else f"0x{self.frame_id:03X}"


@dataclass(frozen=True)
class DecodeReport:
    """What happened to the frames of one batch, beside the values decoded from them.

    Every frame is in exactly one of: decoded (possibly truncated), rejected, unknown.
    """

    frames: int
    decoded_frames: int  # frames that produced values (truncated ones included)
    unknown_frames: dict[FrameKey, int]  # id not in the DBC: frames per id
    truncated_frames: dict[FrameKey, int]  # shorter than the DBC length: decoded partially
    rejected_frames: dict[FrameKey, int]  # multiplexer value without a branch: no values

    @property
    def unknown_frame_count(self) -> int:
        return sum(self.unknown_frames.values())

    @property
    def rejected_frame_count(self) -> int:
        return sum(self.rejected_frames.values())


@dataclass(frozen=True, slots=True)
class _Frames:
    """Some frames of a batch, as the decoder reads them: batch rows and their columns."""

    known: npt.NDArray[np.intp]  # batch rows of the known frames, in capture order
    order: npt.NDArray[np.intp]  # these frames' positions in ``known``
    timestamp_s: npt.NDArray[np.float64]
    bus: npt.NDArray[np.uint16]
    length: npt.NDArray[np.uint8]
    words: npt.NDArray[np.uint64] | None  # the first 8 payload bytes (None: narrower data)

    @property
    def rows(self) -> npt.NDArray[np.intp]:
        """Indices of these frames into the batch."""
        return self.known[self.order]

    def select(self, rows: slice | npt.NDArray[np.bool_]) -> _Frames:
        """The frames picked by a slice or a boolean mask."""
        return _Frames(
            self.known,
            self.order[rows],
            self.timestamp_s[rows],
            self.bus[rows],
            self.length[rows],
            None if self.words is None else self.words[rows],
        )

    def __len__(self) -> int:
        return len(self.order)


@dataclass
class _Group:
    plan: MessagePlan
    frames: _Frames
    raw: npt.NDArray[np.uint64] | None  # None: plain, computed from the words by _assemble
    values: npt.NDArray[np.float64] | None  # computed early only where multiplexing needs them
    present: npt.NDArray[np.bool_] | None
    truncated: int
    rejected: int

    @property
    def size(self) -> int:
        if self.present is not None:
            return int(self.present.sum())
        return self.plan.width * len(self.frames)


class BatchDecoder:
    """Decodes batches of CAN frames with the messages of one cantools ``Database``.

    Decode plans for every message are built once here; :meth:`decode` then costs a few NumPy
    operations per message present in the batch, independent of the number of frames.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        # memory for the gathered frame columns and the output: reused, chunk after chunk,
        # once the caller has dropped the previous result
        self._buffers = BufferPool()
        messages = list(database.messages)
        names: dict[str, int] = {}
        for message in messages:
            for signal in message.signals:
                names.setdefault(signal.name, len(names))
        self.message_names: tuple[str, ...] = tuple(m.name for m in messages)
        self.signal_names: tuple[str, ...] = tuple(names)
        self._plans = tuple(build_plan(m, i, names) for i, m in enumerate(messages))
        self._by_key: dict[FrameKey, MessagePlan] = {
            FrameKey(int(m.frame_id), bool(m.is_extended_frame)): p
            for m, p in zip(messages, self._plans)
        }
        self._index_dtype = np.int16 if len(messages) < 2**15 - 1 else np.int32
        self._standard_table: npt.NDArray[np.signedinteger[Any]] = np.full(
            MAX_STANDARD_ID + 2, -1, self._index_dtype
        )
        extended = sorted(
            (k.frame_id, p.message_index) for k, p in self._by_key.items() if k.is_extended
        )
        for key, plan in self._by_key.items():
            if not key.is_extended and key.frame_id <= MAX_STANDARD_ID:
                self._standard_table[key.frame_id] = plan.message_index
        self._extended_keys = np.array([k for k, _ in extended], np.uint64)
        self._extended_plans = np.array([i for _, i in extended], self._index_dtype)
        # Sort key of a known frame: 2 * message index, + 1 for a short frame of a message
        # without multiplexing (those are decoded apart, with masks).
        self._key_dtype = np.int16 if len(messages) < 2**14 - 1 else np.int32
        self._split_length = np.array(
            [0 if p.is_multiplexed else p.length for p in self._plans], np.int16
        )

    @property
    def database(self) -> Database:
        return self._database

    @property
    def known_frame_ids(self) -> frozenset[FrameKey]:
        """The ``(frame_id, is_extended)`` of every message the DBC defines."""
        return frozenset(self._by_key)

    def message_for(self, frame_id: int, is_extended: bool = False) -> Message:
        """The cantools message for a CAN id.

        Raises:
            NotFoundError: the DBC defines no message with that id (and extended flag).
        """
        plan = self._by_key.get(FrameKey(frame_id, is_extended))
        if plan is None:
            kind = "extended" if is_extended else "standard"
            raise NotFoundError(f"no message with {kind} frame id {frame_id:#x} in the DBC")
        return plan.message

    def choices(self, message_name: str, signal_name: str) -> Mapping[int, str]:
        """The value table (raw value -> label) of a signal; empty if it has none.

        Raises:
            NotFoundError: no such message or signal.
        """
        try:
            signal = self._database.get_message_by_name(message_name).get_signal_by_name(
                signal_name
            )
        except KeyError:
            raise NotFoundError(f"no signal {message_name}.{signal_name} in the DBC") from None
        return {int(k): str(v) for k, v in (signal.conversion.choices or {}).items()}

    def labels(self, decoded: DecodedSignals) -> npt.NDArray[np.object_]:
        """The value-table label of each row of ``decoded`` (``None`` where there is none).

        The raw value is recovered as ``round((value - offset) / scale)``, exact for the small
        integers value tables use.
        """
        out = np.full(len(decoded), None, dtype=object)
        pair = decoded.message_index.astype(np.int64) << 32 | decoded.signal_index.astype(np.int64)
        for key in np.unique(pair):
            message = self._plans[int(key >> 32)].message
            signal = message.get_signal_by_name(self.signal_names[int(key & 0xFFFF_FFFF)])
            table = signal.conversion.choices
            if not table:
                continue
            rows = np.flatnonzero(pair == key)
            scale, offset = float(signal.conversion.scale), float(signal.conversion.offset)
            raw = np.round((decoded.value[rows] - offset) / scale)
            for row, value in zip(rows.tolist(), raw.tolist()):
                if not math.isnan(value):
                    label = table.get(int(value))
                    out[row] = None if label is None else str(label)
        return out

    def message_indices(self, batch: FrameBatch) -> npt.NDArray[np.signedinteger]:
        """The index into ``message_names`` of each frame's message; -1 where the DBC defines
        no message with the frame's id (a small signed integer dtype)."""
        return self._lookup(batch)

    def decode(self, batch: FrameBatch) -> DecodedSignals:
        """Every signal value of ``batch``; see :meth:`decode_with_report` for frame counts."""
        return self.decode_with_report(batch)[0]

    def decode_with_report(self, batch: FrameBatch) -> tuple[DecodedSignals, DecodeReport]:
        """Decode ``batch``: signal values, and what happened to each frame.

        Rows come grouped by message (in DBC order), then by signal (in the message's signal
        order), and in capture order within each signal.
        """
        plan_of_frame = self._lookup(batch)
        known = np.flatnonzero(plan_of_frame >= 0)
        known_plan = plan_of_frame[known]
        # Gather each column in two steps, the known frames in capture order first: the
        # second, scattered gather (by message) then reads a compact array that stays in cache.
        length = self._take(batch.length, known)
        key: npt.NDArray[np.signedinteger[Any]] = known_plan.astype(self._key_dtype)
        key <<= 1
        key |= length < np.take(self._split_length, known_plan)
        # one stable sort of the known frames by key: each message's rows, in capture order
        within = np.argsort(key, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=2 * len(self._plans)))))
        words = _payload_words(batch.data)
        frames = _Frames(
            known,
            within,
            self._take(self._take(batch.timestamp_s, known), within),
            self._take(self._take(batch.bus, known), within),
            self._take(length, within),
            None if words is None else self._take(self._take(words, known), within),
        )
        groups: list[_Group] = []
        truncated: dict[FrameKey, int] = {}
        rejected: dict[FrameKey, int] = {}
        for index in np.flatnonzero(bounds[2::2] - bounds[:-1:2]).tolist():
            plan = self._plans[index]
            start, middle, stop = bounds[2 * index : 2 * index + 3].tolist()
            if plan.is_multiplexed:
                part = frames.select(slice(start, stop))
                n_short = int(np.count_nonzero(part.length < plan.length))
                parts = [self._decode_group(batch, plan, part, n_short)]
            else:
                # the full-length frames keep the fast path; only the short ones need masks
                parts = [
                    self._decode_group(
                        batch, plan, frames.select(slice(a, b)), b - a if short else 0
                    )
                    for a, b, short in ((start, middle, False), (middle, stop, True))
                    if b > a
                ]
            frame_key = FrameKey(int(plan.message.frame_id), bool(plan.message.is_extended_frame))
            for group in parts:
                if group.truncated:
                    truncated[frame_key] = truncated.get(frame_key, 0) + group.truncated
                if group.rejected:
                    rejected[frame_key] = group.rejected
                groups.append(group)
        n_unknown = len(batch) - len(known)
        unknown = self._count_unknown(batch, plan_of_frame, n_unknown)
        report = DecodeReport(
            frames=len(batch),
            decoded_frames=len(known) - sum(rejected.values()),
            unknown_frames=unknown,
            truncated_frames=truncated,
            rejected_frames=rejected,
        )
        return self._assemble(groups), report

    def _lookup(self, batch: FrameBatch) -> npt.NDArray[np.signedinteger]:
        """The message index of each frame, or -1 for ids the DBC does not define."""
        frame_id = batch.frame_id
        # Standard ids: one table read per frame; ids above 0x7FF land on the -1 sentinel.
        out = self._buffers.empty(len(frame_id), self._standard_table.dtype.type)
        for start in range(0, len(frame_id), _CHUNK):  # chunks: no full-size index copy
            part = slice(start, start + _CHUNK)
            np.take(self._standard_table, frame_id[part], mode="clip", out=out[part])
        extended = np.flatnonzero(batch.is_extended)
        if len(extended):
            keys = frame_id[extended].astype(np.uint64)
            out[extended] = -1
            if len(self._extended_keys):
                pos = np.searchsorted(self._extended_keys, keys)
                pos[pos >= len(self._extended_keys)] = 0
                hit = self._extended_keys[pos] == keys
                out[extended[hit]] = self._extended_plans[pos[hit]]
        return out

    def _take(self, array: npt.NDArray[Any], indices: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
        """``array[indices]`` for valid indices, into pooled (large: huge-page aligned) memory."""
        out = self._buffers.empty(len(indices), array.dtype.type)
        return np.take(array, indices, out=out, mode="clip")  # "clip": no checked copy of ``out``

    def _count_unknown(
        self, batch: FrameBatch, plan_of_frame: npt.NDArray[np.signedinteger], n_unknown: int
    ) -> dict[FrameKey, int]:
        if n_unknown == 0:
            return {}
        counts: dict[FrameKey, int] = {}
        extended = batch.is_extended
        any_extended = bool(extended.any())
        # Standard ids: one histogram over every frame (bucket 0x800: ids too large to be
        # standard), less the ids the DBC defines.
        ids = batch.frame_id[~extended] if any_extended else batch.frame_id
        too_large = len(ids) > 0 and int(ids.max()) > MAX_STANDARD_ID
        if too_large:
            ids = np.minimum(ids, MAX_STANDARD_ID + 1)
        per_id = np.zeros(MAX_STANDARD_ID + 2, np.intp)
        for start in range(0, len(ids), _CHUNK):  # chunks: no full-size index copy
            per_id += np.bincount(ids[start : start + _CHUNK], minlength=MAX_STANDARD_ID + 2)
        per_id[self._standard_table >= 0] = 0
        for frame_id in np.flatnonzero(per_id[: MAX_STANDARD_ID + 1]).tolist():
            counts[FrameKey(frame_id, False)] = int(per_id[frame_id])
        odd: list[tuple[bool, npt.NDArray[np.bool_]]] = []
        if too_large and per_id[-1]:
            odd.append(
                (False, (plan_of_frame < 0) & ~extended & (batch.frame_id > MAX_STANDARD_ID))
            )
        if any_extended:
            odd.append((True, (plan_of_frame < 0) & extended))
        for flag, rows in odd:
            if rows.any():
                found, n = np.unique(batch.frame_id[rows], return_counts=True)
                counts.update(
                    {FrameKey(int(i), flag): int(c) for i, c in zip(found.tolist(), n.tolist())}
                )
        return counts

    def _decode_group(
        self, batch: FrameBatch, plan: MessagePlan, frames: _Frames, n_short: int
    ) -> _Group:
        available: npt.NDArray[np.int64] | None = None
        if n_short:
            available = np.minimum(frames.length, plan.length).astype(np.int64)
        if plan.width == 0:
            return _Group(
                plan, frames, np.empty((0, len(frames)), np.uint64), None, None, n_short, 0
            )
        if frames.words is not None and plan.within_first_8_bytes:
            if available is None and not plan.reaches_past_end and not plan.is_multiplexed:
                # plain: values are computed straight into the output by _assemble
                return _Group(plan, frames, None, None, None, 0, 0)
            raw = raw_fields_from_words(frames.words, plan)
        else:
            payload = batch.data[frames.rows]
            width = 8 if plan.within_first_8_bytes else max(plan.length, 8) + 9
            if payload.shape[1] < width:
                payload = np.pad(payload, ((0, 0), (0, width - payload.shape[1])))
            raw = raw_fields(payload, plan)
        values: npt.NDArray[np.float64] | None = None
        present: npt.NDArray[np.bool_] | None = None
        if available is not None or plan.reaches_past_end:
            limit = np.full(len(frames), plan.length, np.int64) if available is None else available
            present = plan.end_bit[:, None] <= 8 * limit[None, :]
        n_rejected = 0
        if plan.is_multiplexed:
            values = physical_values(raw, plan)
            present, refused = _select_branches(values, plan, present)
            n_rejected = int(refused.sum())
            if n_rejected and available is not None:
                n_short -= int((refused & (available < plan.length)).sum())
        return _Group(plan, frames, raw, values, present, n_short, n_rejected)

    def _assemble(self, groups: list[_Group]) -> DecodedSignals:
        sizes = [g.size for g in groups]
        total = sum(sizes)
        frame_id = self._buffers.empty(total, np.uint32)
        message_index = self._buffers.empty(total, np.int32)
        signal_index = self._buffers.empty(total, np.int32)
        timestamp = self._buffers.empty(total, np.float64)
        bus = self._buffers.empty(total, np.uint16)
        value = self._buffers.empty(total, np.float64)
        # one scratch block for the word path, reused by every message
        scratch = self._buffers.empty(
            max(
                (s for g, s in zip(groups, sizes) if g.raw is None and g.present is None),
                default=0,
            ),
            np.uint64,
        )
        start = 0
        for g, size in zip(groups, sizes):
            stop = start + size
            k, n = g.plan.width, len(g.frames)
            frame_id[start:stop] = g.plan.message.frame_id
            message_index[start:stop] = g.plan.message_index
            if g.present is None:
                signal_index[start:stop].reshape(k, n)[:] = g.plan.signal_index[:, None]
                block = value[start:stop].reshape(k, n)
                if g.raw is None:
                    assert g.frames.words is not None
                    physical_values_from_words(g.frames.words, g.plan, block, scratch)
                else:
                    physical_values(g.raw, g.plan, out=block)
                timestamp[start:stop].reshape(k, n)[:] = g.frames.timestamp_s
                bus[start:stop].reshape(k, n)[:] = g.frames.bus
            else:
                values = g.values
                if values is None:
                    assert g.raw is not None
                    values = physical_values(g.raw, g.plan)
                value[start:stop] = values[g.present]
                signal_index[start:stop] = np.repeat(g.plan.signal_index, g.present.sum(axis=1))
                timestamp[start:stop] = np.broadcast_to(g.frames.timestamp_s, (k, n))[g.present]
                bus[start:stop] = np.broadcast_to(g.frames.bus, (k, n))[g.present]
            start = stop
        return DecodedSignals(
            timestamp_s=timestamp,
            frame_id=frame_id,
            bus=bus,
            message_index=message_index,
            signal_index=signal_index,
            value=value,
            message_names=self.message_names,
            signal_names=self.signal_names,
        )


#: Frames per step where a step over the whole batch would copy it to a temporary first.
_CHUNK = 1 << 16


def _payload_words(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64] | None:
    """The first 8 bytes of every payload as one little-endian 64-bit word (None if narrower)."""
    if data.shape[1] < 8:
        return None
    first8 = (
        data
        if data.shape[1] == 8 and data.flags.c_contiguous
        else np.ascontiguousarray(data[:, :8])
    )
    return first8.view("<u8").reshape(-1)


def _select_branches(
    values: npt.NDArray[np.float64], plan: MessagePlan, present: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which signals (rows) each frame (column) carries under multiplexing, and which frames
    are refused."""
    fits = np.ones(values.shape, np.bool_) if present is None else present
    out = fits & plan.root_columns[:, None]
    refused = np.zeros(values.shape[1], np.bool_)
    for branch in plan.branches:
        decided = out[branch.mux_column]
        # cantools compares int(physical value) with the branch ids
        selector = np.trunc(values[branch.mux_column])
        refused |= decided & ~np.isin(selector, branch.known_values)
        for column, ids in branch.children:
            chosen = selector == ids[0] if len(ids) == 1 else np.isin(selector, ids)
            out[column] = decided & chosen & fits[column]
    out[:, refused] = False
    return out, refused
