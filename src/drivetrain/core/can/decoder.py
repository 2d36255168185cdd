"""The batch CAN decoder: whole arrays of frames to signal values, agreeing with cantools.

:class:`BatchDecoder` groups a :class:`~drivetrain.core.can.frames.FrameBatch` by
``(frame_id, is_extended)``, decodes every signal of all frames of a message at once with
NumPy (see :mod:`drivetrain.core.can.bitfields`), and returns one row per signal value in
capture order (frame by frame; within a frame, in the message's signal order).

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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database, Message

from drivetrain.core.can.bitfields import physical_values, raw_fields
from drivetrain.core.can.decode_plan import MessagePlan, build_plan
from drivetrain.core.can.frames import DecodedSignals, FrameBatch
from drivetrain.core.errors import NotFoundError

_EXTENDED_BIT = np.uint64(1 << 32)


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


@dataclass
class _Group:
    plan: MessagePlan
    rows: npt.NDArray[np.intp]
    values: npt.NDArray[np.float64]
    present: npt.NDArray[np.bool_] | None


class BatchDecoder:
    """Decodes batches of CAN frames with the messages of one cantools ``Database``.

    Decode plans for every message are built once here; :meth:`decode` then costs a few NumPy
    operations per message present in the batch, independent of the number of frames.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        messages = list(database.messages)
        names: dict[str, int] = {}
        for message in messages:
            for signal in message.signals:
                names.setdefault(signal.name, len(names))
        self.message_names: tuple[str, ...] = tuple(m.name for m in messages)
        self.signal_names: tuple[str, ...] = tuple(names)
        self._plans = tuple(build_plan(m, i, names) for i, m in enumerate(messages))
        self._by_key: dict[FrameKey, MessagePlan] = {
            FrameKey(int(m.frame_id), bool(m.is_extended_frame)): p for m, p in zip(messages, self._plans)
        }
        keys = np.array([_key(k.frame_id, k.is_extended) for k in self._by_key], np.uint64)
        order = np.argsort(keys)
        self._sorted_keys = keys[order]
        self._sorted_plans = np.array([p.message_index for p in self._by_key.values()], np.int32)[order]
        self._index_dtype = np.int16 if len(messages) < 2**15 - 1 else np.int32

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
            signal = self._database.get_message_by_name(message_name).get_signal_by_name(signal_name)
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
                if value == value:  # not NaN
                    label = table.get(int(value))
                    out[row] = None if label is None else str(label)
        return out

    def decode(self, batch: FrameBatch) -> DecodedSignals:
        """Every signal value of ``batch``; see :meth:`decode_with_report` for frame counts."""
        return self.decode_with_report(batch)[0]

    def decode_with_report(self, batch: FrameBatch) -> tuple[DecodedSignals, DecodeReport]:
        """Decode ``batch``: signal values in capture order, and what happened to each frame."""
        n = len(batch)
        keys = batch.frame_id.astype(np.uint64)
        if batch.is_extended.any():
            keys |= batch.is_extended.astype(np.uint64) * _EXTENDED_BIT
        plan_of_frame = self._lookup(keys)
        unknown = plan_of_frame < 0
        order = np.argsort(plan_of_frame.astype(self._index_dtype), kind="stable")
        bounds = np.cumsum(np.bincount(plan_of_frame + 1, minlength=len(self._plans) + 1))
        counts = np.zeros(n, np.int64)
        groups: list[_Group] = []
        truncated: dict[FrameKey, int] = {}
        rejected: dict[FrameKey, int] = {}
        for index, plan in enumerate(self._plans):
            start, stop = int(bounds[index]), int(bounds[index + 1])
            if start == stop:
                continue
            rows = order[start:stop]
            group, n_truncated, n_rejected = self._decode_group(batch, plan, rows)
            key = FrameKey(int(plan.message.frame_id), bool(plan.message.is_extended_frame))
            if n_truncated:
                truncated[key] = n_truncated
            if n_rejected:
                rejected[key] = n_rejected
            counts[rows] = plan.width if group.present is None else group.present.sum(axis=1)
            groups.append(group)
        signals = self._assemble(batch, plan_of_frame, counts, groups)
        report = DecodeReport(
            frames=n,
            decoded_frames=int(n - unknown.sum() - sum(rejected.values())),
            unknown_frames=_count_keys(keys[unknown]),
            truncated_frames=truncated,
            rejected_frames=rejected,
        )
        return signals, report

    def _lookup(self, keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        """The message index of each frame key, or -1 for ids the DBC does not define."""
        if len(self._sorted_keys) == 0:
            return np.full(len(keys), -1, np.int32)
        pos = np.searchsorted(self._sorted_keys, keys)
        pos[pos >= len(self._sorted_keys)] = 0
        hit = self._sorted_keys[pos] == keys
        return np.where(hit, self._sorted_plans[pos], np.int32(-1)).astype(np.int32)

    def _decode_group(
        self, batch: FrameBatch, plan: MessagePlan, rows: npt.NDArray[np.intp]
    ) -> tuple[_Group, int, int]:
        available = np.minimum(batch.length[rows], min(plan.length, batch.data.shape[1])).astype(np.int64)
        short = available < plan.length
        n_truncated = int(short.sum())
        if plan.width == 0:
            return _Group(plan, rows, np.empty((len(rows), 0)), None), n_truncated, 0
        payload = batch.data[rows]
        width = 8 if plan.within_first_8_bytes else max(plan.length, 8) + 9
        if payload.shape[1] < width:
            payload = np.pad(payload, ((0, 0), (0, width - payload.shape[1])))
        values = physical_values(raw_fields(payload, plan), plan)
        present: npt.NDArray[np.bool_] | None = None
        if n_truncated or plan.end_bit.max() > 8 * plan.length:
            present = plan.end_bit[None, :] <= 8 * available[:, None]
        n_rejected = 0
        if plan.is_multiplexed:
            present, refused = _select_branches(values, plan, present)
            n_rejected = int(refused.sum())
            n_truncated -= int((refused & short).sum())
        return _Group(plan, rows, values, present), n_truncated, n_rejected

    def _assemble(
        self,
        batch: FrameBatch,
        plan_of_frame: npt.NDArray[np.int32],
        counts: npt.NDArray[np.int64],
        groups: list[_Group],
    ) -> DecodedSignals:
        total = int(counts.sum())
        offsets = np.cumsum(counts) - counts
        value = np.empty(total, np.float64)
        signal_index = np.empty(total, np.int32)
        for g in groups:
            k = g.plan.width
            base = offsets[g.rows][:, None]
            if g.present is None:
                pos = base + np.arange(k)
                value[pos] = g.values
                signal_index[pos] = g.plan.signal_index
            else:
                pos = (base + np.cumsum(g.present, axis=1) - 1)[g.present]
                value[pos] = g.values[g.present]
                signal_index[pos] = np.broadcast_to(g.plan.signal_index, g.present.shape)[g.present]
        return DecodedSignals(
            timestamp_s=np.repeat(batch.timestamp_s, counts),
            frame_id=np.repeat(batch.frame_id, counts),
            bus=np.repeat(batch.bus, counts),
            message_index=np.repeat(plan_of_frame, counts),
            signal_index=signal_index,
            value=value,
            message_names=self.message_names,
            signal_names=self.signal_names,
        )


def _key(frame_id: int, is_extended: bool) -> int:
    return frame_id | (1 << 32 if is_extended else 0)


def _count_keys(keys: npt.NDArray[np.uint64]) -> dict[FrameKey, int]:
    ids, counts = np.unique(keys, return_counts=True)
    return {
        FrameKey(int(k) & 0xFFFF_FFFF, bool(int(k) >> 32)): int(c) for k, c in zip(ids.tolist(), counts.tolist())
    }


def _select_branches(
    values: npt.NDArray[np.float64], plan: MessagePlan, present: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which columns each frame carries under multiplexing, and which frames are refused."""
    fits = np.ones(values.shape, np.bool_) if present is None else present
    out = fits & plan.root_columns[None, :]
    refused = np.zeros(values.shape[0], np.bool_)
    for branch in plan.branches:
        decided = out[:, branch.mux_column]
        # cantools compares int(physical value) with the branch ids
        selector = np.trunc(values[:, branch.mux_column])
        refused |= decided & ~np.isin(selector, branch.known_values)
        for column, ids in branch.children:
            chosen = selector == ids[0] if len(ids) == 1 else np.isin(selector, ids)
            out[:, column] = decided & chosen & fits[:, column]
    out[refused] = False
    return out, refused
