"""Safe aggregates: fleet statistics over location released without exposing one vehicle.

Where the fleet was is personal data of each vehicle in it. A statistic over it — how many
vehicles were in a map cell in an hour — is released in one of two ways (pure; no I/O):

**k-anonymous** (:func:`k_anonymous`): a group (cell × hour) is released only when at least
``k`` distinct vehicles are in it; smaller groups are suppressed and only their number is
said. ``k`` has a floor in the settings (``privacy_min_group_vehicles``, default 5); a caller
may ask for more, never less.

**Differentially private** (:func:`dp_counts`, OpenDP): the distinct-vehicle count of every
cell of a caller-chosen bounding box × every hour gets noise from OpenDP's Laplace mechanism
(discrete, over integers). Each vehicle is kept in at most ``max_groups_per_vehicle`` groups
(its first ones in time), so adding or removing one vehicle changes the vector of counts by
at most that much in L1 — the sensitivity; the noise scale is ``sensitivity / epsilon`` and
OpenDP's privacy map states the epsilon the release costs. Every cell of the box is noised,
empty ones too, so which cells appear says nothing; rounding negatives up to 0 and
suppressing noisy counts below ``k`` is post-processing and costs no privacy. The epsilon
is charged to the tenant's budget (:mod:`drivetrain.cloud.privacy.budget`) before anything
is released.

Cells are ``cell_deg``-degree squares named by their south-west corner (``"48.13,11.57"``);
hours are UTC hours (or one group for the whole window when ``per_hour`` is false).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from drivetrain.core.errors import BadInputError, ConfigurationError

NS_PER_HOUR: Final = 3_600_000_000_000
#: Most groups (cells × hours) one differentially private release may noise.
MAX_DP_GROUPS: Final = 200_000
#: Most groups one vehicle may add to in a differentially private release.
MAX_GROUPS_PER_VEHICLE: Final = 64
#: Finest and coarsest cell, degrees.
MIN_CELL_DEG: Final = 0.001
MAX_CELL_DEG: Final = 10.0


class DifferentialPrivacyUnavailableError(ConfigurationError):
    """The OpenDP library is not installed (``pip install 'drivetrain[privacy-dp]'``)."""


@dataclass(frozen=True, slots=True)
class LocationSamples:
    """Position samples: per row a vehicle (any id), latitude, longitude and time (ns UTC)."""

    vehicle: npt.NDArray[np.str_] | npt.NDArray[np.object_]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    ts_ns: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = len(self.vehicle)
        if not len(self.lat) == len(self.lon) == len(self.ts_ns) == n:
            raise ValueError("vehicle, lat, lon and ts_ns must have the same length")


@dataclass(frozen=True, slots=True)
class Group:
    """One released group: a cell (south-west corner), an hour (None: the whole window),
    its vehicles and (k-anonymous only) its samples."""

    cell: str
    hour: datetime | None
    vehicles: int
    samples: int | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"cell": self.cell, "hour": None if self.hour is None else self.hour.isoformat(),
                "vehicles": self.vehicles, "samples": self.samples}


@dataclass(frozen=True, slots=True)
class Release:
    """What may be published: the groups kept, how many were suppressed, and how."""

    method: str  # "k_anonymity" or "differential_privacy"
    k: int
    groups: tuple[Group, ...]
    suppressed: int
    epsilon: float | None = None
    noise_scale: float | None = None
    sensitivity: int | None = None


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A public area (degrees): the cells a differentially private release noises."""

    south: float
    west: float
    north: float
    east: float

    @classmethod
    def parse(cls, text: str) -> BoundingBox:
        """``south,west,north,east`` in degrees, e.g. ``48.0,11.3,48.3,11.8``.

        Raises:
            BadInputError: not four numbers, out of range, or empty.
        """
        parts = text.split(",")
        try:
            south, west, north, east = (float(p) for p in parts)
        except ValueError:
            raise BadInputError(f"bbox {text!r} is not south,west,north,east in degrees "
                                "(e.g. 48.0,11.3,48.3,11.8)") from None
        if not (-90 <= south < north <= 90 and -180 <= west < east <= 180):
            raise BadInputError(f"bbox {text!r} is empty or out of range; expected "
                                "-90 <= south < north <= 90 and -180 <= west < east <= 180")
        return cls(south, west, north, east)


def check_cell(cell_deg: float) -> float:
    """``cell_deg`` if it is within [MIN_CELL_DEG, MAX_CELL_DEG].

    Raises:
        BadInputError: outside.
    """
    if not math.isfinite(cell_deg) or not MIN_CELL_DEG <= cell_deg <= MAX_CELL_DEG:
        raise BadInputError(f"cell_deg {cell_deg!r} is out of range; expected "
                            f"{MIN_CELL_DEG} to {MAX_CELL_DEG} degrees")
    return cell_deg


def _cells(samples: LocationSamples, cell_deg: float) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    row = np.floor(samples.lat / cell_deg).astype(np.int64)
    col = np.floor(samples.lon / cell_deg).astype(np.int64)
    return row, col


def _name(row: int, col: int, cell_deg: float) -> str:
    digits = max(0, -math.floor(math.log10(cell_deg)))
    return f"{row * cell_deg:.{digits}f},{col * cell_deg:.{digits}f}"


def _vehicle_codes(samples: LocationSamples) -> npt.NDArray[np.int64]:
    """A dense int code per distinct vehicle id (Arrow's dictionary encoding, fast on text)."""
    encoded = pa.array(samples.vehicle).dictionary_encode()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _hour(samples: LocationSamples, per_hour: bool) -> npt.NDArray[np.int64]:
    if not per_hour:
        return np.zeros(len(samples.ts_ns), dtype=np.int64)
    return samples.ts_ns // NS_PER_HOUR


def _hour_of(index: int, per_hour: bool) -> datetime | None:
    return datetime.fromtimestamp(index * 3600, UTC) if per_hour else None


def k_anonymous(
    samples: LocationSamples, *, k: int, cell_deg: float, per_hour: bool = True
) -> Release:
    """Vehicles and samples per cell (× hour), only for groups of at least ``k`` vehicles.

    Raises:
        BadInputError: ``k`` below 2 or a cell size out of range.
    """
    if k < 2:
        raise BadInputError(f"k {k} is too small; a group must hold at least 2 vehicles")
    check_cell(cell_deg)
    if len(samples.vehicle) == 0:
        return Release("k_anonymity", k, (), 0)
    row, col = _cells(samples, cell_deg)
    hour = _hour(samples, per_hour)
    vehicle = _vehicle_codes(samples)
    # one int64 key per (row, col, hour): np.unique on 1-D ints is what keeps this fast
    r0, c0, h0 = row.min(), col.min(), hour.min()
    cols, hours = int(col.max() - c0 + 1), int(hour.max() - h0 + 1)
    key = ((row - r0) * cols + (col - c0)) * hours + (hour - h0)
    keys, group_of, sample_counts = np.unique(key, return_inverse=True, return_counts=True)
    pairs = np.unique(group_of.astype(np.int64) * (int(vehicle.max()) + 1) + vehicle)
    vehicle_counts = np.bincount(pairs // (int(vehicle.max()) + 1), minlength=len(keys))
    kept = np.flatnonzero(vehicle_counts >= k)
    cell, hour_of = np.divmod(keys, hours)
    cell_row, cell_col = np.divmod(cell, cols)
    released = tuple(
        Group(_name(int(cell_row[i] + r0), int(cell_col[i] + c0), cell_deg),
              _hour_of(int(hour_of[i] + h0), per_hour), int(vehicle_counts[i]),
              int(sample_counts[i]))
        for i in kept
    )
    return Release("k_anonymity", k, released, int(len(keys) - len(kept)))


def dp_counts(
    samples: LocationSamples,
    *,
    bbox: BoundingBox,
    hours: Sequence[int],
    epsilon: float,
    k: int,
    cell_deg: float,
    max_groups_per_vehicle: int = 8,
    per_hour: bool = True,
) -> Release:
    """Distinct vehicles per cell of ``bbox`` × hour in ``hours`` (hour indexes since the
    epoch; ignored unless ``per_hour``), with OpenDP Laplace noise costing ``epsilon``;
    noisy counts below ``k`` are suppressed.

    Raises:
        BadInputError: ``epsilon`` not in (0, 10], a bound or cell size out of range, or too
            many groups (cells × hours above :data:`MAX_DP_GROUPS`).
        DifferentialPrivacyUnavailableError: OpenDP is not installed.
    """
    if not math.isfinite(epsilon) or not 0 < epsilon <= 10:
        raise BadInputError(f"epsilon {epsilon!r} is out of range; expected > 0 and <= 10")
    if not 1 <= max_groups_per_vehicle <= MAX_GROUPS_PER_VEHICLE:
        raise BadInputError(f"max_groups_per_vehicle {max_groups_per_vehicle} is out of range; "
                            f"expected 1 to {MAX_GROUPS_PER_VEHICLE}")
    check_cell(cell_deg)
    row0, col0 = math.floor(bbox.south / cell_deg), math.floor(bbox.west / cell_deg)
    rows = math.floor(bbox.north / cell_deg) - row0 + 1
    cols = math.floor(bbox.east / cell_deg) - col0 + 1
    hour_list = list(hours) if per_hour else [0]
    size = rows * cols * len(hour_list)
    if size > MAX_DP_GROUPS or not hour_list:
        raise BadInputError(f"the box and window make {size:,} groups "
                            f"({rows}x{cols} cells x {len(hour_list)} hours); expected 1 to "
                            f"{MAX_DP_GROUPS:,}: choose a larger cell, a smaller box or window")
    counts = np.zeros(size, dtype=np.int64)
    if len(samples.vehicle):
        row, col = _cells(samples, cell_deg)
        hour = _hour(samples, per_hour)
        known = np.array(hour_list, dtype=np.int64)
        order_of = np.argsort(known)
        at = np.clip(np.searchsorted(known[order_of], hour), 0, len(known) - 1)
        hour_slot = np.where(known[order_of][at] == hour, order_of[at], -1)
        inside = ((row >= row0) & (row < row0 + rows) & (col >= col0) & (col < col0 + cols)
                  & (hour_slot >= 0))
        flat = ((hour_slot * rows + (row - row0)) * cols + (col - col0))[inside]
        vehicles = _vehicle_codes(samples)[inside]
        times = samples.ts_ns[inside]
        # per vehicle, its first max_groups_per_vehicle distinct groups in time (the bound):
        # each (vehicle, group) pair at its first sample, ranked in time within the vehicle
        pair = vehicles * np.int64(size) + flat
        order = np.argsort(times, kind="stable")
        unique_pairs, first = np.unique(pair[order], return_index=True)
        pair_vehicle, pair_group = np.divmod(unique_pairs, np.int64(size))
        pair_time = times[order][first]
        by_vehicle = np.lexsort((pair_time, pair_vehicle))
        ranked_vehicle = pair_vehicle[by_vehicle]
        starts = np.flatnonzero(np.r_[True, ranked_vehicle[1:] != ranked_vehicle[:-1]])
        rank = np.arange(len(ranked_vehicle)) - np.repeat(starts, np.diff(np.r_[starts,
                                                                             len(ranked_vehicle)]))
        chosen = pair_group[by_vehicle][rank < max_groups_per_vehicle]
        counts += np.bincount(chosen, minlength=size).astype(np.int64)
    noisy, scale = _laplace(counts, sensitivity=max_groups_per_vehicle, epsilon=epsilon)
    released = []
    for index in np.flatnonzero(noisy >= k):
        h, rest = divmod(int(index), rows * cols)
        r, c = divmod(rest, cols)
        released.append(Group(_name(row0 + r, col0 + c, cell_deg),
                              _hour_of(hour_list[h], per_hour), int(noisy[index]), None))
    return Release("differential_privacy", k, tuple(released), int(size - len(released)),
                   epsilon=epsilon, noise_scale=scale, sensitivity=max_groups_per_vehicle)


def _laplace(
    counts: npt.NDArray[np.int64], *, sensitivity: int, epsilon: float
) -> tuple[npt.NDArray[np.int64], float]:
    """``counts`` with OpenDP's (discrete) Laplace noise of scale ``sensitivity / epsilon``,
    checked against OpenDP's own privacy map; negatives become 0."""
    try:
        import opendp.prelude as dp
    except ImportError as e:
        raise DifferentialPrivacyUnavailableError(
            "differentially private aggregates need OpenDP: pip install 'drivetrain[privacy-dp]'"
        ) from e
    dp.enable_features("contrib")
    scale = sensitivity / epsilon
    measurement = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64), scale)
    spent = float(measurement.map(sensitivity))  # type: ignore[no-untyped-call,unused-ignore]
    if spent > epsilon * (1 + 1e-9):  # the library's own accounting must agree with ours
        raise ValueError(f"OpenDP charges epsilon {spent} for scale {scale}; expected {epsilon}")
    noisy = np.asarray(measurement(counts.tolist()), dtype=np.int64)
    return np.maximum(noisy, 0), scale
