"""A throughput micro-benchmark of frame synthesis, with cantools' per-frame encoding as the
baseline (the reference the synthesizer is tested against).

``measure_synthesis("compact_bev", vehicles=2000)`` synthesizes consecutive windows for a fleet
with random in-range values and reports frames per second and how many vehicles one core keeps
up with in real time. ``measure_cantools(...)`` encodes a sample of the same frames one by one
with ``Message.encode``. Numbers move with the machine's load: compare figures of one run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.can.synthesizer import FrameSynthesizer
from drivetrain.sim.can.vehicles import load_vehicle_can


@dataclass(frozen=True)
class SynthesisThroughput:
    """What one measurement found: ``frames`` encoded in ``seconds`` of wall time; one vehicle's
    bus carries ``bus_frames_per_s`` frames per simulated second."""

    model: str
    frames: int
    seconds: float
    bus_frames_per_s: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def realtime_vehicles(self) -> float:
        """How many vehicles' buses one core encodes in real time."""
        return self.frames_per_s / self.bus_frames_per_s


def random_vss_values(
    synthesizer: FrameSynthesizer, n_vehicles: int, rng: np.random.Generator
) -> dict[str, npt.NDArray[np.float64]]:
    """Random VSS values for every path the synthesizer's map carries, uniform over the range
    the DBC signal can represent (converted to the VSS unit)."""
    values: dict[str, npt.NDArray[np.float64]] = {}
    for (message, signal), (path, factor, offset) in synthesizer.field_sources().items():
        if path in values:
            continue
        field = synthesizer.layout(message).field(signal)
        low, high = sorted((field.minimum * factor + offset, field.maximum * factor + offset))
        values[path] = rng.uniform(low, high, n_vehicles)
    return values


def measure_synthesis(
    model: str = "compact_bev",
    *,
    vehicles: int = 2000,
    window_s: float = 1.0,
    windows: int = 5,
    seed: int = 0,
) -> SynthesisThroughput:
    """Synthesize ``windows`` consecutive windows (after one untimed warm-up window).

    Raises:
        NotFoundError: unknown model.
        ValueError: non-positive sizes.
    """
    if vehicles < 1 or windows < 1 or window_s <= 0:
        raise ValueError(
            f"vehicles, windows and window_s must be positive, got {vehicles}, {windows}, {window_s}"
        )
    can_model = load_vehicle_can(model)
    synthesizer = FrameSynthesizer(can_model.database, can_model.signal_map, seed=seed)
    values = random_vss_values(synthesizer, vehicles, np.random.default_rng(seed))
    synthesizer.synthesize(0.0, window_s, values)
    frames = 0
    started = time.perf_counter()
    for i in range(1, windows + 1):
        frames += len(synthesizer.synthesize(i * window_s, (i + 1) * window_s, values))
    seconds = time.perf_counter() - started
    return SynthesisThroughput(model, frames, seconds, frames / (vehicles * windows * window_s))


def measure_cantools(
    model: str = "compact_bev", *, frames: int = 20_000, seed: int = 0
) -> SynthesisThroughput:
    """Encode ``frames`` frames one by one with cantools' ``Message.encode`` (the baseline):
    the same messages and values as a synthesized window of a small fleet.

    Raises:
        NotFoundError: unknown model.
    """
    can_model = load_vehicle_can(model)
    synthesizer = FrameSynthesizer(can_model.database, can_model.signal_map, seed=seed)
    vehicles = 8
    values = random_vss_values(synthesizer, vehicles, np.random.default_rng(seed))
    batch = synthesizer.synthesize(0.0, 1.0, values)
    per_signal = synthesizer.signal_values(values)
    messages = {lay.frame_id: lay.message for lay in synthesizer.layouts}
    jobs = []
    for i in range(len(batch)):
        message = messages[int(batch.frames.frame_id[i])]
        vehicle = int(batch.vehicle[i])
        decoded = message.decode(
            bytes(batch.frames.data[i, : message.length]), decode_choices=False
        )
        assert isinstance(decoded, dict)
        given = per_signal.get(message.name, {})
        jobs.append(
            (
                message,
                {
                    name: float(given[name][vehicle]) if name in given else value
                    for name, value in decoded.items()
                },
            )
        )
    count = 0
    started = time.perf_counter()
    while count < frames:
        for message, signal_values in jobs:
            message.encode(signal_values, scaling=True, strict=True)
            count += 1
            if count >= frames:
                break
    seconds = time.perf_counter() - started
    return SynthesisThroughput(model, count, seconds, len(batch) / vehicles)
