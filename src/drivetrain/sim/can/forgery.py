"""Attacks that forge valid frames of a DBC message: targeted spoofing and masquerade.

The attacker knows the DBC and the E2E scheme (as a compromised ECU or a reverse-engineered
gateway does): it takes the last genuine frame of the message it saw as a template, overwrites
the target signals, continues the rolling counter from the last genuine value and recomputes the
checksum, so its frames pass a receiver's counter and CRC checks.

- :func:`spoof` — injected *beside* the genuine frames, at a higher rate (the genuine sender
  keeps sending; receivers see both). Label ``Fabrication`` (ROAD's name).
- :func:`masquerade` — the genuine sender is silenced for the window and the attacker takes
  its place at the message's period, on its own clock. Label ``Masquerade``.

Target values are physical DBC values by signal name (``{"VehicleSpeed": 0.0}``);
:func:`dbc_values` converts VSS values through the vehicle's map (``{"Vehicle.Speed": 0.0}``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import FrameBatch, SignalMap
from drivetrain.core.errors import NotFoundError
from drivetrain.sim.can.attacks import _batch, _genuine_rows, _record, _window
from drivetrain.sim.can.ground_truth import LabelledFrames
from drivetrain.sim.can.layout import (
    BusLayout,
    MessageLayout,
    initial_words,
    payload_words,
    with_counter,
    with_values,
    word_payload,
)


def dbc_values(
    signal_map: SignalMap, vss_values: Mapping[str, float]
) -> tuple[str, dict[str, float]]:
    """The message and physical DBC values that carry ``vss_values`` (VSS path → value in the
    VSS unit), through the inverse of each path's first map entry.

    Raises:
        NotFoundError: a path the map does not carry.
        ValueError: the paths live in different messages (one forged message at a time), or
            an entry with factor 0.
    """
    message: str | None = None
    out: dict[str, float] = {}
    for path, value in vss_values.items():
        entry = next((e for e in signal_map.mappings if e.vss_path == path), None)
        if entry is None:
            raise NotFoundError(
                f"VSS path {path!r} is not carried by this vehicle's map ({signal_map.source})"
            )
        if message is not None and entry.message != message:
            raise ValueError(
                f"{path!r} is in message {entry.message}, not {message}; forge one message at a time"
            )
        message = entry.message
        conversion = entry.conversion()
        if conversion.factor == 0.0:
            raise ValueError(f"map entry {entry.source!r} has factor 0 and cannot be inverted")
        out[entry.signal] = (float(value) - conversion.offset) / conversion.factor
    if message is None:
        raise ValueError("vss_values is empty; name at least one VSS path to forge")
    return message, out


def spoof(
    traffic: LabelledFrames,
    rng: np.random.Generator,
    layouts: BusLayout,
    *,
    message: str,
    values: Mapping[str, float],
    start_s: float,
    duration_s: float,
    interval_s: float | None = None,
) -> LabelledFrames:
    """Targeted spoofing: forged frames of ``message`` with ``values`` (e.g. speed, gear, motor
    rpm), valid counter and checksum, every ``interval_s`` (default: a fifth of the message's
    period, so receivers mostly see the forged value) with ±10 % jitter, beside the genuine
    frames, from ``start_s`` for ``duration_s``.

    Raises:
        NotFoundError: an unknown message or signal.
        ValueError: a bad window or interval, or a value for a counter, checksum, multiplexer
            switch or multiplexed signal.
    """
    layout = layouts.message(message)
    targets = _targets(layout, values)
    end_s = _window(start_s, duration_s)
    interval = layout.period_s / 5.0 if interval_s is None else float(interval_s)
    if not np.isfinite(interval) or interval <= 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    steps = int(np.ceil(duration_s / interval)) + 1
    times = start_s + (np.arange(steps) + rng.uniform(-0.1, 0.1, steps)) * interval
    times = np.sort(times[(times >= start_s) & (times < end_s)])
    genuine_t, genuine_w, genuine_c = _genuine(traffic, layout)
    latest = np.searchsorted(genuine_t, times, side="right") - 1
    # forged frames since the last genuine one: the attacker counts on from that genuine value
    run_start = np.searchsorted(latest, latest, side="left")
    rank = np.arange(len(times)) - run_start
    template = initial_words(layout, len(times))
    last_counter = np.full(len(times), -1, np.int64)
    seen = latest >= 0
    template[seen] = genuine_w[latest[seen]]
    last_counter[seen] = genuine_c[latest[seen]]
    words = with_counter(layout, with_values(layout, template, targets), last_counter + 1 + rank)
    injected = _forged_batch(traffic, layout, times, words)
    detail = f"{message}: {_describe(targets)} every {interval * 1e3:g} ms"
    record = _record(traffic, "spoofing", times, (layout.frame_id,), len(times), 0, detail)
    return traffic.with_injected(injected, record)


def masquerade(
    traffic: LabelledFrames,
    rng: np.random.Generator,
    layouts: BusLayout,
    *,
    message: str,
    values: Mapping[str, float],
    start_s: float,
    duration_s: float,
    clock_drift_ppm: float = 200.0,
    jitter_s: float = 2e-4,
) -> LabelledFrames:
    """Masquerade: the genuine sender of ``message`` is silenced in the window and the attacker
    sends in its place — from the first silenced frame's time, at the message's period on a
    clock that drifts by up to ``clock_drift_ppm``, each frame late by up to ``jitter_s`` — with
    the last genuine payload, ``values`` overwritten, the counter continued and a valid checksum.

    Raises:
        NotFoundError: an unknown message or signal.
        ValueError: a bad window, drift or jitter; no genuine frame of the message in the
            window; a value for a counter, checksum or multiplexed signal.
    """
    layout = layouts.message(message)
    targets = _targets(layout, values)
    end_s = _window(start_s, duration_s)
    if not 0 <= clock_drift_ppm < 10_000 or not 0 <= jitter_s < layout.period_s / 2:
        raise ValueError(
            f"clock_drift_ppm must be in [0, 10000) and jitter_s in [0, period/2 = "
            f"{layout.period_s / 2:g}), got {clock_drift_ppm}, {jitter_s}"
        )
    f = traffic.frames
    silenced = (
        _genuine_rows(traffic, layout.frame_id, layout.is_extended)
        & (f.timestamp_s >= start_s)
        & (f.timestamp_s < end_s)
    )
    if not silenced.any():
        raise ValueError(f"no genuine frame of {message} in [{start_s}, {end_s}) to masquerade as")
    first = float(f.timestamp_s[silenced].min())
    period = layout.period_s * (1.0 + rng.uniform(-1.0, 1.0) * clock_drift_ppm * 1e-6)
    steps = int(np.ceil((end_s - first) / period)) + 1
    times = first + np.arange(steps) * period + rng.uniform(0.0, jitter_s, steps)
    times = times[times < end_s]
    genuine_t, genuine_w, genuine_c = _genuine(traffic, layout)
    before = int(np.searchsorted(genuine_t, first, side="left")) - 1  # last genuine frame kept
    template = genuine_w[before] if before >= 0 else initial_words(layout, 1)[0]
    counter0 = int(genuine_c[before]) if before >= 0 else -1
    words = with_counter(
        layout,
        with_values(layout, np.full(len(times), template, np.uint64), targets),
        counter0 + 1 + np.arange(len(times), dtype=np.int64),
    )
    injected = _forged_batch(traffic, layout, times, words)
    span = np.concatenate([f.timestamp_s[silenced], times])
    detail = f"{message}: {_describe(targets)}, genuine sender silenced"
    record = _record(
        traffic, "masquerade", span, (layout.frame_id,), len(times), int(silenced.sum()), detail
    )
    keep = ~silenced
    quiet = LabelledFrames(f.take(keep), traffic.attack[keep], traffic.records, traffic.vehicle)
    return quiet.with_injected(injected, record)


def _targets(layout: MessageLayout, values: Mapping[str, float]) -> dict[str, float]:
    if not values:
        raise ValueError(f"values is empty; name at least one signal of {layout.name} to forge")
    data = {f.name: f for f in layout.data_fields}
    out: dict[str, float] = {}
    for name, value in values.items():
        field = layout.field(name)  # NotFoundError for an unknown signal
        if name not in data:
            raise ValueError(
                f"{layout.name}.{name} is the E2E counter, checksum or multiplexer switch; "
                "the forger sets those itself"
            )
        if field.pages is not None:
            raise ValueError(
                f"{layout.name}.{name} is multiplexed; forge a signal outside multiplexer branches"
            )
        if not np.isfinite(value):
            raise ValueError(f"value of {layout.name}.{name} must be finite, got {value}")
        out[name] = float(value)
    return out


def _genuine(
    traffic: LabelledFrames, layout: MessageLayout
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Times, payload words and counters of the genuine frames of ``layout``'s message."""
    rows = _genuine_rows(traffic, layout.frame_id, layout.is_extended)
    f = traffic.frames
    words = payload_words(f.data[rows])
    counter = layout.counter
    counters = counter.unpack(words) if counter is not None else np.zeros(len(words), np.int64)
    return f.timestamp_s[rows], words, counters


def _forged_batch(
    traffic: LabelledFrames,
    layout: MessageLayout,
    times: npt.NDArray[np.float64],
    words: npt.NDArray[np.uint64],
) -> FrameBatch:
    n = len(times)
    data = word_payload(words)
    data[:, layout.length :] = 0
    return _batch(
        traffic,
        times,
        np.full(n, layout.frame_id, np.uint32),
        np.full(n, layout.is_extended),
        np.full(n, layout.length, np.uint8),
        data,
    )


def _describe(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in values.items())
