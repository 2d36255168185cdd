"""When each ECU sends each message: period, phase, clock drift and jitter, per vehicle.

Every message ``m`` of vehicle ``v`` is sent at the nominal times ``phase + k * period * (1 +
drift)`` for ``k = 0, 1, 2, …``, each frame delayed by a jitter ``delay_k`` (an ECU's task runs
a little late, the frame waits for the bus). ``phase`` (uniform in one period), ``drift`` (the
sending ECU's oscillator error, uniform in ``±clock_drift_ppm``, shared by every message of that
ECU in that vehicle) and the rolling counter's first value are drawn per (vehicle, message); the
delay per frame. All come from a counter-based hash (SplitMix64) of ``(seed, vehicle id,
message, k)`` rather than a sequential generator, so a frame's time and counter depend only on
which frame it is: synthesizing ``[0, 2) s`` equals synthesizing ``[0, 1)`` and ``[1, 2)`` —
windows of any size give the same bus — and the result never depends on the order of calls.

A frame belongs to the window that holds its *nominal* time; its timestamp (nominal + delay) can
lie up to one delay past the window's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)

#: Purposes of hashed draws (kept apart so no two draws share a stream).
PHASE, DRIFT, COUNTER, JITTER, PAGE = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class TimingModel:
    """Timing imperfections of the simulated ECUs.

    ``jitter_fraction``: a frame's send delay is uniform in ``[0, min(jitter_fraction * period,
    max_jitter_s))``. ``clock_drift_ppm``: each ECU's clock runs fast or slow by a uniform
    amount within ± this many parts per million (real quartz: 20–100 ppm).

    Raises:
        ValueError: a negative value, or a jitter fraction of 0.5 or more (frames of one
            message could then swap order).
    """

    jitter_fraction: float = 0.05
    max_jitter_s: float = 0.002
    clock_drift_ppm: float = 50.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter_fraction < 0.5:
            raise ValueError(f"jitter_fraction must be in [0, 0.5), got {self.jitter_fraction}")
        if self.max_jitter_s < 0.0:
            raise ValueError(f"max_jitter_s must be >= 0, got {self.max_jitter_s}")
        if not 0.0 <= self.clock_drift_ppm < 10_000.0:
            raise ValueError(f"clock_drift_ppm must be in [0, 10000), got {self.clock_drift_ppm}")

    def max_delay_s(self, period_s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The largest send delay of frames of messages with these periods."""
        return np.minimum(period_s * self.jitter_fraction, self.max_jitter_s)


def splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's output function: a bijective, well-mixed hash of 64-bit integers."""
    z = x + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


def stream_keys(
    seed: int, vehicle_ids: npt.NDArray[np.int64], streams: npt.NDArray[np.int64], purpose: int
) -> npt.NDArray[np.uint64]:
    """One 64-bit key per (stream, vehicle): shape ``(len(streams), len(vehicle_ids))``.

    ``streams`` numbers the senders of the draws (message indices, or ECU indices for drift).
    """
    with np.errstate(over="ignore"):
        base = splitmix64(np.array([seed & 0xFFFF_FFFF_FFFF_FFFF], _U64) ^ _U64(purpose))[0]
        per_stream = splitmix64(streams.astype(_U64) + base)
        per_vehicle = splitmix64(vehicle_ids.astype(_U64) * _MIX2)
        return splitmix64(per_stream[:, None] ^ per_vehicle[None, :])


def uniform(keys: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) per key (53 bits of the hashed key)."""
    with np.errstate(over="ignore"):
        return (splitmix64(keys) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def frame_uniform(
    keys: npt.NDArray[np.uint64], k: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) per frame: ``keys`` is the frame's stream key, ``k`` its
    index in the stream."""
    with np.errstate(over="ignore"):
        return uniform(keys ^ (k.astype(_U64) * _GOLDEN))


@dataclass(frozen=True)
class FrameIndex:
    """The frames of a window: one row per frame, in (pair, k) order.

    ``pair`` indexes the flattened ``(message, vehicle)`` grid; ``k`` is the frame's number in
    its message's stream since time 0.
    """

    pair: npt.NDArray[np.intp]
    k: npt.NDArray[np.int64]
    nominal_s: npt.NDArray[np.float64]


def frames_in_window(
    phase_s: npt.NDArray[np.float64],
    period_s: npt.NDArray[np.float64],
    start_s: float,
    end_s: float,
) -> FrameIndex:
    """The frames whose nominal time ``phase + k * period`` lies in ``[start_s, end_s)``.

    ``phase_s`` and ``period_s`` are flat arrays, one entry per (message, vehicle) pair. The
    membership test uses the same floating-point expression for every window, so adjacent
    windows neither lose nor repeat a frame.
    """
    first = _first_at_or_after(phase_s, period_s, start_s)
    stop = _first_at_or_after(phase_s, period_s, end_s)
    counts = np.maximum(stop - first, 0)
    total = int(counts.sum())
    pair = np.repeat(np.arange(len(counts), dtype=np.intp), counts)
    starts = np.cumsum(counts) - counts
    k = first[pair] + (np.arange(total, dtype=np.int64) - starts[pair])
    nominal = phase_s[pair] + k * period_s[pair]
    return FrameIndex(pair, k, nominal)


def _first_at_or_after(
    phase_s: npt.NDArray[np.float64], period_s: npt.NDArray[np.float64], t: float
) -> npt.NDArray[np.int64]:
    """Per pair, the smallest ``k >= 0`` with ``phase + k * period >= t``."""
    k = np.maximum(np.ceil((t - phase_s) / period_s), 0.0).astype(np.int64)
    # the division rounds: settle the boundary with the expression that defines nominal times
    too_late = (k > 0) & (phase_s + (k - 1) * period_s >= t)
    k = k - too_late
    too_early = phase_s + k * period_s < t
    return k + too_early
