"""Decoding frames shorter than their DBC message: one row per signal, missing ones marked.

Real captures hold frames shorter than the DBC says (comma2k19: about 2 % of the known
frames). cantools (``allow_truncated=True``) and the batch decoder then leave out the signals
that do not fit, so a reader of the output cannot tell "not sent" from "not in the DBC". The
``can decode`` output instead keeps one row per signal of every known frame and marks the
value of a signal that lies past the received bytes as missing (null in Parquet); the values
that were received are exactly those cantools decodes.

How: such frames are decoded with their length raised to the DBC length (the bytes past a
frame's length are zero by the ``FrameBatch`` contract, and the values read from them are then
discarded). Which rows came from a short frame follows from the decoder's layout (a message's
rows are one block per signal, each holding its frames in capture order); where a message is
not laid out so, the batch is decoded again with the frame index in place of the timestamp, so
that each row can be traced to its frame.

Multiplexed messages are left as the decoder reads them (only the signals of the branch that
fits), since which branch a truncated frame carries may itself be unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database, Signal

from drivetrain.core.can.decoder import BatchDecoder, DecodeReport
from drivetrain.core.can.frames import DecodedSignals, FrameBatch


def signal_end_bit(signal: Signal) -> int:
    """One past the last payload bit ``signal`` occupies, counting bits from the start of byte 0
    (byte 0 bit 7 .. bit 0 are positions 0..7 for big endian; bit 0 .. 7 for little endian)."""
    if signal.byte_order == "little_endian":
        return int(signal.start) + int(signal.length)
    msb = 8 * (signal.start // 8) + (7 - signal.start % 8)
    return int(msb) + int(signal.length)


@dataclass(frozen=True)
class DecodedChunk:
    """Values of one batch: ``missing[i]`` is True where row ``i``'s signal was not received
    (``None`` when every value was); ``truncated_frames`` counts the frames it completed."""

    signals: DecodedSignals
    report: DecodeReport
    missing: npt.NDArray[np.bool_] | None
    truncated_frames: int


class CompletingDecoder:
    """A ``BatchDecoder`` that yields every signal of truncated non-multiplexed frames."""

    def __init__(self, database: Database) -> None:
        self.decoder = BatchDecoder(database)
        # DBC length per message index (0 for multiplexed messages); the last entry, read for
        # index -1, is 0 for ids the DBC does not define
        self._lengths = np.array(
            [0 if m.is_multiplexed() else m.length for m in database.messages] + [0], np.uint8
        )
        plain = [m for m in database.messages if not m.is_multiplexed()]
        self._end_bit = {(m.name, s.name): signal_end_bit(s) for m in plain for s in m.signals}

    def decode(self, frames: FrameBatch) -> DecodedChunk:
        """Decode ``frames`` (see the module docstring)."""
        message_of = self.decoder.message_indices(frames)
        dbc_length = np.take(self._lengths, message_of)
        short = frames.length < dbc_length
        if not short.any():
            signals, report = self.decoder.decode_with_report(frames)
            return DecodedChunk(signals, report, None, 0)
        width = max(frames.data.shape[1], int(dbc_length.max()))
        data = frames.data
        if width > data.shape[1]:
            data = np.pad(data, ((0, 0), (0, width - data.shape[1])))
        completed = replace(
            frames, length=np.where(short, dbc_length, frames.length).astype(np.uint8), data=data
        )
        signals, report = self.decoder.decode_with_report(completed)
        missing = self._missing_by_layout(frames, message_of, short, signals)
        if missing is None:  # rows not laid out as expected: trace each row to its frame
            signals, report = self.decoder.decode_with_report(
                replace(completed, timestamp_s=np.arange(len(frames), dtype=np.float64))
            )
            row_frame = signals.timestamp_s.astype(np.int64)
            missing = np.zeros(len(signals), np.bool_)
            from_short = np.flatnonzero(short[row_frame])
            if len(from_short):
                needed = self._end_bits(signals, from_short)
                received = 8 * frames.length[row_frame[from_short]].astype(np.int64)
                missing[from_short] = needed > received
            signals = replace(signals, timestamp_s=frames.timestamp_s[row_frame])
        report = replace(report, truncated_frames={})
        return DecodedChunk(signals, report, missing if missing.any() else None, int(short.sum()))

    def _missing_by_layout(
        self,
        frames: FrameBatch,
        message_of: npt.NDArray[np.signedinteger],
        short: npt.NDArray[np.bool_],
        signals: DecodedSignals,
    ) -> npt.NDArray[np.bool_] | None:
        """Which rows of ``signals`` (the decoded completed ``frames``) were not received, found
        from the decoder's layout: a message's rows are contiguous, one block per signal, each
        holding the message's frames in capture order. Only messages with a short frame are
        looked at; ``None`` if one of them is not laid out so (then rows must be traced)."""
        missing = np.zeros(len(signals), np.bool_)
        rows_message = signals.message_index
        n_messages = len(signals.message_names)
        # each message's frames in capture order (a stable sort of small integers: a radix sort)
        by_message = np.argsort(message_of, kind="stable")
        frame_bounds = np.searchsorted(
            message_of[by_message], np.arange(n_messages + 1, dtype=message_of.dtype)
        ).tolist()
        row_bounds = np.searchsorted(
            rows_message, np.arange(n_messages + 1, dtype=rows_message.dtype)
        ).tolist()
        for m in np.unique(message_of[short]).tolist():
            own = by_message[frame_bounds[m] : frame_bounds[m + 1]]
            n = len(own)
            lo, hi = row_bounds[m], row_bounds[m + 1]
            k = (hi - lo) // n
            if k == 0 or hi - lo != k * n or rows_message[lo] != m or rows_message[hi - 1] != m:
                return None
            blocks = signals.signal_index[lo:hi].reshape(k, n)
            if not np.array_equal(blocks[:, 0], blocks[:, -1]) or not np.array_equal(
                signals.timestamp_s[lo : lo + n], frames.timestamp_s[own]
            ):
                return None
            cut = np.flatnonzero(short[own])
            received = 8 * frames.length[own[cut]].astype(np.int64)
            message = signals.message_names[m]
            needed = np.array(
                [self._end_bit.get((message, signals.signal_names[s]), 0) for s in blocks[:, 0].tolist()],
                np.int64,
            )
            missing[lo:hi].reshape(k, n)[:, cut] = needed[:, None] > received[None, :]
        return missing

    def _end_bits(self, signals: DecodedSignals, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        width = len(signals.signal_names) + 1
        pair = signals.message_index[rows].astype(np.int64) * width + signals.signal_index[rows]
        unique, inverse = np.unique(pair, return_inverse=True)
        table = np.array(
            [
                self._end_bit.get(
                    (signals.message_names[int(p) // width], signals.signal_names[int(p) % width]), 0
                )
                for p in unique.tolist()
            ],
            np.int64,
        )
        return table[inverse]

