"""A synthetic CAN capture of the reference vehicle, and the check that decoding reproduces it.

``synthesize_capture`` samples a drive profile at each message's cycle time, encodes every
frame with cantools (the reference encoder), sets rolling counters and checksum bytes as the
ECUs would, and keeps the physical values it encoded. ``verify_roundtrip`` compares what a
decoder returned with those values (within half a DBC resolution step), checks that every
frame was decoded, and checks counters and checksums as a receiving ECU does. Pure functions:
no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cantools.database.can import Database, Message

from drivetrain.core.can import CLASSIC_CAN_MAX_BYTES, DecodedSignals, FrameBatch
from drivetrain.demo.drive_profile import DURATION_S, DriveProfile
from drivetrain.sim.reference_vehicle import CHECKSUM_BYTE, frame_checksum

COUNTER_MODULO = 16


@dataclass(frozen=True)
class SignalIndex:
    """Every signal of a DBC numbered once: id ``i`` is ``keys[i] = (frame id, signal name)``."""

    keys: tuple[tuple[int, str], ...]
    resolution: npt.NDArray[np.float64]  # the DBC scale of each signal

    @classmethod
    def of(cls, database: Database) -> SignalIndex:
        keys = [(m.frame_id, s.name) for m in database.messages for s in m.signals]
        scale = [abs(float(s.scale)) for m in database.messages for s in m.signals]
        return cls(tuple(keys), np.array(scale, np.float64))

    def ids_of(self, decoded: DecodedSignals, database: Database) -> npt.NDArray[np.int64]:
        """The signal id of each decoded row (-1 where the decoder named an unknown signal)."""
        by_key = {key: i for i, key in enumerate(self.keys)}
        table = np.full(
            (len(decoded.message_names), max(len(decoded.signal_names), 1)), -1, np.int64
        )
        for mi, message_name in enumerate(decoded.message_names):
            frame_id = database.get_message_by_name(message_name).frame_id
            for si, signal_name in enumerate(decoded.signal_names):
                table[mi, si] = by_key.get((frame_id, signal_name), -1)
        return table[decoded.message_index, decoded.signal_index]


@dataclass(frozen=True)
class SyntheticCapture:
    """One vehicle's frames and, row for row of the encoded signals, the values encoded."""

    vin: str
    frames: FrameBatch
    frame_id: npt.NDArray[np.uint32]
    timestamp_s: npt.NDArray[np.float64]
    signal_id: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]


def _message_times(message: Message) -> npt.NDArray[np.float64]:
    cycle_s = (message.cycle_time or 1000) / 1000.0
    phase_s = (message.frame_id % 97) * 1e-4  # ECUs are not synchronised: spread the frames
    return phase_s + np.arange(0.0, DURATION_S - phase_s, cycle_s)


def synthesize_capture(
    database: Database, index: SignalIndex, profile: DriveProfile, vin: str, bus: int = 0
) -> SyntheticCapture:
    """Encode the whole profile as CAN frames with ``database`` (cantools ``Message.encode``).

    Counters roll 0..15 per message; multiplexed messages cycle through their pages; checksum
    bytes follow ``frame_checksum``. Raises whatever cantools raises for a value it cannot
    encode (a programming error here: values are clipped to the DBC ranges first).
    """
    id_of = {key: i for i, key in enumerate(index.keys)}
    rows: list[tuple[float, int, bytes]] = []
    exp_frame: list[npt.NDArray[np.uint32]] = []
    exp_time: list[npt.NDArray[np.float64]] = []
    exp_signal: list[npt.NDArray[np.int64]] = []
    exp_value: list[npt.NDArray[np.float64]] = []
    for message in database.messages:
        times = _message_times(message)
        n = len(times)
        frame_ids = np.full(n, message.frame_id, np.uint32)
        counter = f"{message.name}_Counter"
        checksum = f"{message.name}_Checksum"
        mux = [s for s in message.signals if s.is_multiplexer]
        pages = sorted({p for s in message.signals for p in (s.multiplexer_ids or [])})
        page_of_frame = np.arange(n) % max(len(pages), 1)
        columns: dict[str, npt.NDArray[np.float64]] = {}
        present: dict[str, npt.NDArray[np.bool_]] = {}
        for signal in message.signals:
            if signal.name == counter:
                values = (np.arange(n) % COUNTER_MODULO).astype(np.float64)
            elif signal.name == checksum:
                values = np.zeros(n)
            elif signal.is_multiplexer:
                values = np.array(pages, np.float64)[page_of_frame] if pages else np.zeros(n)
            else:
                values = profile.sample(signal.name, times)
            low = signal.minimum if signal.minimum is not None else -np.inf
            high = signal.maximum if signal.maximum is not None else np.inf
            columns[signal.name] = np.clip(values, low, high)
            if signal.multiplexer_ids and mux:
                wanted = np.array([pages.index(p) for p in signal.multiplexer_ids])
                present[signal.name] = np.isin(page_of_frame, wanted)
            else:
                present[signal.name] = np.ones(n, np.bool_)
        names = [s.name for s in message.signals]
        has_checksum = checksum in columns
        for k in range(n):
            values_k = {name: float(columns[name][k]) for name in names if present[name][k]}
            payload = bytearray(message.encode(values_k, scaling=True, padding=False, strict=True))
            if has_checksum:
                payload[CHECKSUM_BYTE] = frame_checksum(payload, message.frame_id)
                columns[checksum][k] = payload[CHECKSUM_BYTE]
            rows.append((float(times[k]), message.frame_id, bytes(payload)))
        for name in names:
            mask = present[name]
            exp_frame.append(frame_ids[mask])
            exp_time.append(times[mask])
            exp_signal.append(np.full(int(mask.sum()), id_of[(message.frame_id, name)], np.int64))
            exp_value.append(columns[name][mask])
    rows.sort(key=lambda row: (row[0], row[1]))  # bus order: by time
    data = np.zeros((len(rows), CLASSIC_CAN_MAX_BYTES), np.uint8)
    lengths = np.zeros(len(rows), np.uint8)
    for i, (_, _, frame_bytes) in enumerate(rows):
        data[i, : len(frame_bytes)] = np.frombuffer(frame_bytes, np.uint8)
        lengths[i] = len(frame_bytes)
    frames = FrameBatch(
        timestamp_s=np.array([r[0] for r in rows], np.float64),
        frame_id=np.array([r[1] for r in rows], np.uint32),
        is_extended=np.zeros(len(rows), np.bool_),
        bus=np.full(len(rows), bus, np.uint16),
        length=lengths,
        data=data,
    )
    return SyntheticCapture(
        vin=vin,
        frames=frames,
        frame_id=np.concatenate(exp_frame),
        timestamp_s=np.concatenate(exp_time),
        signal_id=np.concatenate(exp_signal),
        value=np.concatenate(exp_value),
    )


@dataclass(frozen=True)
class RoundTripCheck:
    """What ``verify_roundtrip`` found. ``problems`` is empty when everything held."""

    frames: int
    frames_decoded: int
    values: int
    mismatches: int
    checksum_errors: int
    counter_errors: int
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def verify_roundtrip(
    capture: SyntheticCapture,
    frames: FrameBatch,
    decoded: DecodedSignals,
    database: Database,
    index: SignalIndex,
    checksummed_ids: tuple[int, ...],
) -> RoundTripCheck:
    """Compare ``decoded`` (the decoder's output for ``frames``) with what was encoded.

    Checks: the same (frame, signal) rows; each value within half the signal's DBC resolution
    of the encoded one; every frame present in the output; every checksum byte and every
    rolling-counter step as a receiving ECU checks them.
    """
    problems: list[str] = []
    got_signal = index.ids_of(decoded, database)
    expected_order = np.lexsort((capture.timestamp_s, capture.signal_id, capture.frame_id))
    got_order = np.lexsort((decoded.timestamp_s, got_signal, decoded.frame_id))
    mismatches = 0
    if len(expected_order) != len(got_order):
        mismatches = abs(len(expected_order) - len(got_order))
        problems.append(
            f"decoder returned {len(got_order)} signal values, expected {len(expected_order)}"
        )
    else:
        e_sig, g_sig = capture.signal_id[expected_order], got_signal[got_order]
        e_time, g_time = capture.timestamp_s[expected_order], decoded.timestamp_s[got_order]
        e_val, g_val = capture.value[expected_order], decoded.value[got_order]
        same_row = (e_sig == g_sig) & (e_time == g_time)
        tolerance = index.resolution[e_sig] * 0.5 * (1 + 1e-9) + 1e-9 * np.abs(e_val)
        bad = ~same_row | ~(np.abs(g_val - e_val) <= tolerance)
        mismatches = int(bad.sum())
        if mismatches:
            i = int(np.flatnonzero(bad)[0])
            frame_id, name = index.keys[int(e_sig[i])]
            problems.append(
                f"{mismatches} decoded values differ from the encoded ones; first: "
                f"0x{frame_id:03X} {name} at t={e_time[i]:.4f} s decoded {g_val[i]!r}, "
                f"encoded {e_val[i]!r} (resolution {index.resolution[e_sig[i]]!r})"
            )
    decoded_frames = len(np.unique(np.rec.fromarrays([decoded.frame_id, decoded.timestamp_s])))
    if decoded_frames != len(frames):
        problems.append(
            f"{len(frames) - decoded_frames} of {len(frames)} frames produced no values"
        )
    checksum_errors = _checksum_errors(frames, checksummed_ids)
    if checksum_errors:
        problems.append(f"{checksum_errors} frames fail their checksum")
    counter_errors = _counter_errors(decoded, got_signal, index)
    if counter_errors:
        problems.append(f"{counter_errors} rolling-counter steps are not +1")
    return RoundTripCheck(
        frames=len(frames),
        frames_decoded=decoded_frames,
        values=len(decoded),
        mismatches=mismatches,
        checksum_errors=checksum_errors,
        counter_errors=counter_errors,
        problems=tuple(problems),
    )


def _checksum_errors(frames: FrameBatch, checksummed_ids: tuple[int, ...]) -> int:
    rows = np.isin(frames.frame_id, np.array(checksummed_ids, np.uint32))
    data = frames.data[rows].astype(np.int64)
    ids = frames.frame_id[rows].astype(np.int64)
    total = data[:, :CHECKSUM_BYTE].sum(axis=1) + (ids & 0xFF) + (ids >> 8)
    return int(((total & 0xFF) ^ 0xFF != data[:, CHECKSUM_BYTE]).sum())


def _counter_errors(
    decoded: DecodedSignals, signal_ids: npt.NDArray[np.int64], index: SignalIndex
) -> int:
    errors = 0
    for sid, (_, name) in enumerate(index.keys):
        if not name.endswith("_Counter"):
            continue
        rows = np.flatnonzero(signal_ids == sid)
        values = decoded.value[rows[np.argsort(decoded.timestamp_s[rows], kind="stable")]]
        steps = (np.diff(values) % COUNTER_MODULO).astype(np.int64)
        errors += int((steps != 1).sum())
    return errors
