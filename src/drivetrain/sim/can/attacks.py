"""Attacks on one vehicle's bus that need no knowledge of the DBC: flooding, fuzzing, replay and
suspension (the DBC-aware ones, spoofing and masquerade, are in :mod:`~drivetrain.sim.can.forgery`).

Each injector is a pure function: it takes the bus traffic with its ground truth so far
(:class:`~drivetrain.sim.can.ground_truth.LabelledFrames`), a NumPy ``Generator`` for its random
choices, and the attack's parameters; it returns new traffic with the attack's frames merged in
time order (or removed), labelled, and one :class:`AttackRecord` appended. Attacks compose:
apply one to the result of another. The same generator state gives the same frames.

Injected frames do not delay genuine ones: the synthesized bus has no arbitration model, so a
flood shows as extra frames, not as starved genuine traffic.

Parameters are validated up front; a bad one raises ``ValueError`` naming it and what was
expected, and nothing is injected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import CLASSIC_CAN_MAX_BYTES, FrameBatch
from drivetrain.sim.can.ground_truth import AttackKind, AttackRecord, LabelledFrames

FuzzIds = Literal["random", "known"]
_MAX_STANDARD_ID = 0x7FF
_MAX_EXTENDED_ID = 0x1FFF_FFFF


def flood(
    traffic: LabelledFrames,
    rng: np.random.Generator,
    *,
    start_s: float,
    duration_s: float,
    can_id: int = 0x000,
    is_extended: bool = False,
    interval_s: tuple[float, float] = (1e-4, 3e-4),
    payload: bytes = bytes(CLASSIC_CAN_MAX_BYTES),
) -> LabelledFrames:
    """Flooding (denial of service): a high-priority id sent back to back.

    Frames of ``can_id`` (0x000 wins every arbitration) with ``payload``, at intervals drawn
    uniformly from ``interval_s`` (default 0.1–0.3 ms, as in the Car-Hacking dataset's DoS
    captures), from ``start_s`` for ``duration_s``. Label ``Flooding``.

    Raises:
        ValueError: a bad window, interval, id or payload.
    """
    end_s = _window(start_s, duration_s)
    _check_id(can_id, is_extended, "can_id")
    low, high = _intervals(interval_s)
    if len(payload) > CLASSIC_CAN_MAX_BYTES:
        raise ValueError(f"payload must be at most 8 bytes, got {len(payload)}")
    times = _arrivals(rng, start_s, end_s, low, high)
    data = np.zeros((len(times), CLASSIC_CAN_MAX_BYTES), np.uint8)
    data[:, : len(payload)] = np.frombuffer(payload, np.uint8)
    injected = _batch(
        traffic,
        times,
        np.full(len(times), can_id, np.uint32),
        np.full(len(times), is_extended),
        np.full(len(times), len(payload), np.uint8),
        data,
    )
    record = _record(
        traffic,
        "flooding",
        times,
        (can_id,),
        len(times),
        0,
        f"id 0x{can_id:X} every {low * 1e3:g}-{high * 1e3:g} ms, payload {payload.hex()}",
    )
    return traffic.with_injected(injected, record)


def fuzz(
    traffic: LabelledFrames,
    rng: np.random.Generator,
    *,
    start_s: float,
    duration_s: float,
    interval_s: tuple[float, float] = (4e-4, 6e-4),
    ids: FuzzIds = "random",
    max_id: int = _MAX_STANDARD_ID,
) -> LabelledFrames:
    """Fuzzing: frames with random payloads at intervals drawn from ``interval_s``.

    ``ids="random"``: uniformly random standard ids in ``0..max_id`` with 8 random bytes (as
    the Car-Hacking dataset's fuzzy attack). ``ids="known"``: ids drawn from those the genuine
    traffic uses, each with its genuine length and random bytes (random payloads on valid ids).
    Label ``Fuzzing``.

    Raises:
        ValueError: a bad window, interval or ``max_id``; ``ids="known"`` on traffic without
            genuine frames; an unknown ``ids`` mode.
    """
    end_s = _window(start_s, duration_s)
    low, high = _intervals(interval_s)
    times = _arrivals(rng, start_s, end_s, low, high)
    n = len(times)
    if ids == "random":
        if not 0 <= max_id <= _MAX_STANDARD_ID:
            raise ValueError(f"max_id must be a standard id 0..0x7FF, got {max_id:#x}")
        frame_id = rng.integers(0, max_id + 1, n).astype(np.uint32)
        extended = np.zeros(n, np.bool_)
        length = np.full(n, CLASSIC_CAN_MAX_BYTES, np.uint8)
    elif ids == "known":
        genuine = traffic.frames.take(~traffic.is_attack)
        if not len(genuine):
            raise ValueError(
                "ids='known' needs genuine frames to take ids from; the traffic has none"
            )
        keys = genuine.frame_id.astype(np.int64) | (genuine.is_extended.astype(np.int64) << 32)
        known, first = np.unique(keys, return_index=True)
        pick = rng.integers(0, len(known), n)
        frame_id = (known[pick] & 0xFFFF_FFFF).astype(np.uint32)
        extended = (known[pick] >> 32).astype(np.bool_)
        length = genuine.length[first][pick]
    else:
        raise ValueError(f"ids must be 'random' or 'known', got {ids!r}")
    data = rng.integers(0, 256, (n, CLASSIC_CAN_MAX_BYTES), dtype=np.uint8)
    data[np.arange(CLASSIC_CAN_MAX_BYTES)[None, :] >= length[:, None]] = 0
    injected = _batch(traffic, times, frame_id, extended, length, data)
    detail = f"{ids} ids, random payloads every {low * 1e3:g}-{high * 1e3:g} ms"
    record = _record(traffic, "fuzzing", times, tuple(np.unique(frame_id).tolist()), n, 0, detail)
    return traffic.with_injected(injected, record)


def replay(
    traffic: LabelledFrames,
    rng: np.random.Generator,
    *,
    capture_start_s: float,
    capture_end_s: float,
    start_s: float,
    can_ids: Sequence[int] | None = None,
    latency_s: float = 5e-5,
) -> LabelledFrames:
    """Replay: the frames seen in ``[capture_start_s, capture_end_s)`` sent again from
    ``start_s`` with their original spacing (plus a uniform injection latency up to
    ``latency_s``), every id or only ``can_ids``. Payloads are unchanged, so checksums still
    verify but rolling counters jump back. Label ``Replay``.

    Raises:
        ValueError: a capture window that is empty or ends after ``start_s``, or no frame to
            replay in it.
    """
    if (
        not (math.isfinite(capture_start_s) and math.isfinite(capture_end_s))
        or capture_end_s <= capture_start_s
    ):
        raise ValueError(
            f"capture window [{capture_start_s}, {capture_end_s}) must be finite and non-empty"
        )
    _window(start_s, 1.0)
    if start_s < capture_end_s:
        raise ValueError(
            f"start_s {start_s} must not precede capture_end_s {capture_end_s} (replay sends what was recorded)"
        )
    if latency_s < 0:
        raise ValueError(f"latency_s must be >= 0, got {latency_s}")
    f = traffic.frames
    rows = (f.timestamp_s >= capture_start_s) & (f.timestamp_s < capture_end_s)
    if can_ids is not None:
        rows &= np.isin(f.frame_id, np.asarray(list(can_ids), np.uint32))
    if not rows.any():
        raise ValueError(
            f"no frames{' of the given ids' if can_ids is not None else ''} in "
            f"[{capture_start_s}, {capture_end_s}) to replay"
        )
    recorded = f.take(rows)
    times = (
        start_s
        + (recorded.timestamp_s - capture_start_s)
        + rng.uniform(0.0, latency_s, len(recorded))
    )
    times = np.maximum.accumulate(times)  # one sender: frames leave in recorded order
    injected = FrameBatch(
        times, recorded.frame_id, recorded.is_extended, recorded.bus, recorded.length, recorded.data
    )
    detail = f"recorded [{capture_start_s:g}, {capture_end_s:g}) s, replayed from {start_s:g} s"
    record = _record(
        traffic,
        "replay",
        times,
        tuple(np.unique(recorded.frame_id).tolist()),
        len(times),
        0,
        detail,
    )
    return traffic.with_injected(injected, record)


def suspend(
    traffic: LabelledFrames,
    *,
    can_id: int,
    start_s: float,
    duration_s: float,
    is_extended: bool | None = None,
) -> LabelledFrames:
    """Suspension: the genuine frames of ``can_id`` sent in ``[start_s, start_s + duration_s)``
    never reach the bus (the ECU was silenced, e.g. forced bus-off). No frame is injected; the
    record spans the first to last frame that went missing.

    Raises:
        ValueError: a bad window, or no genuine frame of ``can_id`` in it.
    """
    end_s = _window(start_s, duration_s)
    rows = (
        _genuine_rows(traffic, can_id, is_extended)
        & (traffic.frames.timestamp_s >= start_s)
        & (traffic.frames.timestamp_s < end_s)
    )
    if not rows.any():
        raise ValueError(f"no genuine frame of id 0x{can_id:X} in [{start_s}, {end_s}) to suspend")
    times = traffic.frames.timestamp_s[rows]
    record = _record(
        traffic,
        "suspension",
        times,
        (can_id,),
        0,
        int(rows.sum()),
        f"id 0x{can_id:X} silent from {start_s:g} s for {duration_s:g} s",
    )
    return traffic.without(rows, record)


# --- shared helpers (also used by forgery) ---------------------------------------------------------
def _window(start_s: float, duration_s: float) -> float:
    if not (math.isfinite(start_s) and math.isfinite(duration_s)) or start_s < 0 or duration_s <= 0:
        raise ValueError(
            f"attack window needs start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}"
        )
    return start_s + duration_s


def _intervals(interval_s: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(x) for x in interval_s)
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0 or high < low:
        raise ValueError(f"interval_s must be (low, high) with 0 < low <= high, got {interval_s}")
    return low, high


def _check_id(can_id: int, is_extended: bool, name: str) -> None:
    limit = _MAX_EXTENDED_ID if is_extended else _MAX_STANDARD_ID
    if not 0 <= can_id <= limit:
        kind = "extended" if is_extended else "standard"
        raise ValueError(f"{name} 0x{can_id:X} is outside the {kind} id range 0..0x{limit:X}")


def _arrivals(
    rng: np.random.Generator, start_s: float, end_s: float, low: float, high: float
) -> npt.NDArray[np.float64]:
    """Send times from ``start_s``, gaps uniform in ``[low, high]``, before ``end_s``."""
    most = math.ceil((end_s - start_s) / low) + 1
    gaps = rng.uniform(low, high, most)
    times = start_s + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    return times[times < end_s]


def _batch(
    traffic: LabelledFrames,
    times: npt.NDArray[np.float64],
    frame_id: npt.NDArray[np.uint32],
    extended: npt.NDArray[np.bool_],
    length: npt.NDArray[np.uint8],
    data: npt.NDArray[np.uint8],
) -> FrameBatch:
    bus = int(traffic.frames.bus[0]) if len(traffic.frames) else 0
    return FrameBatch(
        times.astype(np.float64),
        frame_id.astype(np.uint32),
        extended.astype(np.bool_),
        np.full(len(times), bus, np.uint16),
        length.astype(np.uint8),
        data,
    )


def _genuine_rows(
    traffic: LabelledFrames, can_id: int, is_extended: bool | None
) -> npt.NDArray[np.bool_]:
    f = traffic.frames
    rows: npt.NDArray[np.bool_] = (f.frame_id == can_id) & ~traffic.is_attack
    if is_extended is not None:
        rows &= f.is_extended == is_extended
    return rows


def _record(
    traffic: LabelledFrames,
    kind: AttackKind,
    times: npt.NDArray[np.float64],
    can_ids: tuple[int, ...],
    injected: int,
    removed: int,
    detail: str,
) -> AttackRecord:
    if not len(times):
        raise ValueError(f"the {kind} attack window is too short to hold a single frame")
    return AttackRecord(
        kind=kind,
        start_s=float(times.min()),
        end_s=float(times.max()),
        can_ids=tuple(sorted(int(i) for i in can_ids)),
        vehicle=traffic.vehicle,
        injected=injected,
        removed=removed,
        detail=detail,
    )
