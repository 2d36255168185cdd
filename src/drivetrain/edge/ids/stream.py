"""What every detector sees of a batch of frames, and what carries over between batches.

A batch is indexed once: each frame's id becomes a row of the model's id table (unknown ids
share one extra row), its first 8 payload bytes and its length become a 9-column byte block,
and each frame is linked to the previous frame of the same id — inside the batch, or the last
one of an earlier batch (:class:`StreamState`). Detectors then work on whole columns; the only
per-id Python is a handful of NumPy calls per id present in the batch, so the cost per frame
falls as batches grow (the vehicle scores what its bus delivered since the last tick).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch

#: Payload columns a detector sees: data bytes 0..7, then the frame's length (DLC).
PAYLOAD_COLUMNS = 9
LENGTH_COLUMN = 8


class IdTable:
    """The CAN ids a model knows (standard and extended apart), mapped to rows ``0..K-1``;
    every other id maps to row ``K``."""

    def __init__(self, keys: npt.NDArray[np.int64]) -> None:
        self.keys = np.unique(keys.astype(np.int64))

    @staticmethod
    def keys_of(
        frame_id: npt.NDArray[np.uint32], is_extended: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int64]:
        return frame_id.astype(np.int64) | (is_extended.astype(np.int64) << 32)

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """The row of each key (``len(self)`` for keys the table does not hold)."""
        k = len(self.keys)
        if k == 0:
            return np.zeros(len(keys), np.intp)
        pos = np.searchsorted(self.keys, keys)
        clipped = np.minimum(pos, k - 1)
        known = self.keys[clipped] == keys
        return np.where(known, clipped, k).astype(np.intp)

    def label(self, row: int) -> str:
        """The id of a row as CAN tools print it (``0x0D0``, extended ``0x18FEF100x``)."""
        if row >= len(self.keys):
            return "unknown"
        key = int(self.keys[row])
        ident, extended = key & 0x1FFFFFFF, key >> 32
        return f"0x{ident:08X}x" if extended else f"0x{ident:03X}"


def payload_block(frames: FrameBatch) -> npt.NDArray[np.uint8]:
    """The ``(n, 9)`` block: data bytes 0..7 (zero past the frame's length), then the length."""
    block = np.zeros((len(frames), PAYLOAD_COLUMNS), np.uint8)
    width = min(8, frames.data.shape[1])
    block[:, :width] = frames.data[:, :width]
    block[:, LENGTH_COLUMN] = np.minimum(frames.length, 255)
    return block


@dataclass
class StreamState:
    """Per id row, what the last batches left: the last two payloads and the last time, and
    the payload of the id's first accepted frame in the stream (the drive's own values of the
    bytes that stay put for a whole drive: see :func:`drive_reference`)."""

    rows: int
    last_payload: npt.NDArray[np.uint8] = field(init=False)
    prev_payload: npt.NDArray[np.uint8] = field(init=False)
    last_time: npt.NDArray[np.float64] = field(init=False)
    seen: npt.NDArray[np.int8] = field(init=False)  # 0 none, 1 one frame, 2 two or more
    first_payload: npt.NDArray[np.uint8] = field(init=False)  # valid where ``seen`` > 0
    # the id's last frame, accepted or not (``BatchView.last_any``)
    last_any: npt.NDArray[np.uint8] = field(init=False)
    any_seen: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        self.first_payload = np.zeros((self.rows, PAYLOAD_COLUMNS), np.uint8)
        self.last_any = np.zeros((self.rows, PAYLOAD_COLUMNS), np.uint8)
        self.any_seen = np.zeros(self.rows, np.bool_)
        self.last_payload = np.zeros((self.rows, PAYLOAD_COLUMNS), np.uint8)
        self.prev_payload = np.zeros((self.rows, PAYLOAD_COLUMNS), np.uint8)
        self.last_time = np.full(self.rows, np.nan)
        self.seen = np.zeros(self.rows, np.int8)


@dataclass(frozen=True)
class BatchView:
    """One batch, indexed: rows, payloads, per-id groups and the previous frame of each id.

    ``accepted`` marks the frames later frames are compared with (the previous frame of an id,
    the latest frame of a partner id): every frame when training on benign traffic; at run time
    the frames no detector flagged, so a forged frame never becomes the reference that makes the
    next genuine frame look wrong.
    """

    time: npt.NDArray[np.float64]
    row: npt.NDArray[np.intp]
    payload: npt.NDArray[np.uint8]
    prev_payload: npt.NDArray[np.uint8]
    prev_time: npt.NDArray[np.float64]  # NaN: no earlier accepted frame of its id
    groups: dict[int, npt.NDArray[np.intp]]  # id row -> frame positions, in time order
    before: StreamState  # what earlier batches left (read only)
    order: npt.NDArray[np.intp]  # frame positions grouped by id row, time order within
    accepted: npt.NDArray[np.bool_]
    #: Per frame: the payload of the id's previous frame, accepted or not (what the bus last
    #: carried for it), and whether there is one — a value that merely carries on unchanged.
    last_any: npt.NDArray[np.uint8]
    has_last_any: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.time)

    def accepted_rows(self, r: int) -> npt.NDArray[np.intp] | None:
        """Positions of the accepted frames of id row ``r`` (None when it has none)."""
        rows = self.groups.get(r)
        if rows is None:
            return None
        kept = rows[self.accepted[rows]]
        return kept if len(kept) else None


def index_batch(
    frames: FrameBatch,
    ids: IdTable,
    state: StreamState,
    accepted: npt.NDArray[np.bool_] | None = None,
) -> BatchView:
    """Index a batch (frames in time order) against ``ids``, linking each frame to the previous
    accepted frame of its id (all frames when ``accepted`` is None); ``state`` is read, not
    changed (see :func:`advance`)."""
    n = len(frames)
    row = ids.rows(IdTable.keys_of(frames.frame_id, frames.is_extended))
    payload = payload_block(frames)
    order = np.argsort(row, kind="stable")
    ok = np.ones(n, np.bool_) if accepted is None else accepted
    every = np.ones(n, np.bool_)
    prev = previous_accepted(row, order, every)
    inner = prev >= 0
    last = np.empty_like(payload)
    last[inner] = payload[prev[inner]]
    last[~inner] = state.last_any[row[~inner]]
    has_last = inner | state.any_seen[row]
    return _link(frames.timestamp_s, row, payload, order, state, ok, (last, has_last))


def relink(view: BatchView, accepted: npt.NDArray[np.bool_]) -> BatchView:
    """The same batch, linked to the previous *accepted* frame of each id."""
    return _link(
        view.time,
        view.row,
        view.payload,
        view.order,
        view.before,
        accepted,
        (view.last_any, view.has_last_any),
    )


def previous_accepted(
    row: npt.NDArray[np.intp], order: npt.NDArray[np.intp], accepted: npt.NDArray[np.bool_]
) -> npt.NDArray[np.intp]:
    """Per frame, the position of the previous accepted frame of its id in the batch (-1: none
    in this batch); ``order`` groups the positions by id row, time order within."""
    n = len(row)
    sorted_rows = row[order]
    first = np.ones(n, np.bool_)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    starts = np.flatnonzero(first)
    group_start = np.repeat(starts, np.diff(np.append(starts, n)))
    marks = np.where(accepted[order], np.arange(n), -1)
    last_ok = np.maximum.accumulate(marks) if n else marks
    before_ok = np.full(n, -1)
    before_ok[1:] = last_ok[:-1]
    inner = before_ok >= group_start  # an accepted frame of the same id earlier in the batch
    out = np.full(n, -1, np.intp)
    out[order[inner]] = order[before_ok[inner]]
    return out


def _link(
    time: npt.NDArray[np.float64],
    row: npt.NDArray[np.intp],
    payload: npt.NDArray[np.uint8],
    order: npt.NDArray[np.intp],
    state: StreamState,
    accepted: npt.NDArray[np.bool_],
    last_any: tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]],
) -> BatchView:
    n = len(time)
    prev = previous_accepted(row, order, accepted)
    inner = prev >= 0
    prev_payload = np.empty_like(payload)
    prev_time = np.empty(n)
    prev_payload[inner] = payload[prev[inner]]
    prev_time[inner] = time[prev[inner]]
    heads = ~inner
    prev_payload[heads] = state.last_payload[row[heads]]
    prev_time[heads] = state.last_time[row[heads]]
    sorted_rows = row[order]
    starts = np.flatnonzero(np.diff(sorted_rows, prepend=-1) != 0) if n else np.zeros(0, np.intp)
    ends = np.append(starts[1:], n)
    groups = {int(sorted_rows[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}
    return BatchView(
        time, row, payload, prev_payload, prev_time, groups, state, order, accepted, *last_any
    )


def advance(state: StreamState, view: BatchView) -> None:
    """Carry the batch's last accepted payloads and times, and each id's last frame, into
    ``state``."""
    for r, every in view.groups.items():
        state.last_any[r] = view.payload[every[-1]]
        state.any_seen[r] = True
        rows = view.accepted_rows(r)
        if rows is None:
            continue
        if state.seen[r] == 0:
            state.first_payload[r] = view.payload[rows[0]]
        state.prev_payload[r] = view.payload[rows[-2]] if len(rows) >= 2 else state.last_payload[r]
        state.last_payload[r] = view.payload[rows[-1]]
        state.last_time[r] = view.time[rows[-1]]
        state.seen[r] = min(2, int(state.seen[r]) + len(rows))


def drive_reference(view: BatchView) -> npt.NDArray[np.uint8]:
    """Per frame, the payload this drive set for its id: the id's first accepted frame of the
    stream, or — while the id has none yet — its first frame in this batch."""
    n = len(view)
    ref = view.before.first_payload[view.row]
    fresh = view.before.seen[view.row] == 0
    if fresh.any():
        sorted_rows = view.row[view.order]
        first = np.ones(n, np.bool_)
        first[1:] = sorted_rows[1:] != sorted_rows[:-1]
        head = np.zeros(view.before.rows, np.intp)
        head[sorted_rows[first]] = view.order[first]
        ref[fresh] = view.payload[head[view.row[fresh]]]
    return ref


def per_drive_bytes(views: list[BatchView], k: int) -> npt.NDArray[np.bool_]:
    """Per (id row, data byte): the byte never changes within a benign segment but differs
    between segments — a value each drive sets (a configuration, a trip's setting), which a new
    drive may set to a value no training drive had. ``(k + 1, 8)``; row ``k`` (unknown ids)
    is never one."""
    lo = np.full((len(views), k + 1, 8), 255, np.int64)
    hi = np.full((len(views), k + 1, 8), -1, np.int64)
    for i, v in enumerate(views):
        np.minimum.at(lo[i], v.row, v.payload[:, :8])
        np.maximum.at(hi[i], v.row, v.payload[:, :8])
    present = hi >= 0
    steady = ((lo == hi) | ~present).all(axis=0)
    lowest = np.where(present, lo, 255).min(axis=0)
    highest = hi.max(axis=0)
    out: npt.NDArray[np.bool_] = steady & (highest > lowest)
    out[k] = False
    return out


def bit_of(payload: npt.NDArray[np.uint8], bit: int) -> npt.NDArray[np.uint8]:
    """Bit ``bit`` (0 = MSB of byte 0, as ``np.unpackbits`` numbers them) of each payload."""
    return (payload[:, bit >> 3] >> np.uint8(7 - (bit & 7))) & np.uint8(1)
