"""Plausible routes without a road network: great-circle legs with a road-like meander.

A route between two points is a polyline of waypoints about every 300 m, bent sideways by a
smooth random meander (zero at both ends) so its length is 10–30 % above the straight line,
as real roads are. Each segment has a road class — urban near either end's city, highway in
the middle of long trips, rural otherwise — and an altitude that runs from one end's
elevation to the other's with gentle terrain undulation (grades within ±6 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

EARTH_RADIUS_M: Final = 6_371_008.8
URBAN, RURAL, HIGHWAY = 0, 1, 2
ROAD_CLASS_NAMES: Final = ("urban", "rural", "highway")


def haversine_m(lat1: F64 | float, lon1: F64 | float, lat2: F64 | float, lon2: F64 | float) -> F64:
    """Great-circle distance (m) between points given in degrees."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp = p2 - p1
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def bearing_deg(lat1: F64 | float, lon1: F64 | float, lat2: F64 | float, lon2: F64 | float) -> F64:
    """Initial great-circle bearing (degrees clockwise from north, 0..360)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.asarray(lon2) - np.asarray(lon1))
    y = np.sin(dl) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.asarray(np.degrees(np.arctan2(y, x)) % 360.0)


def offset_point(
    lat: float, lon: float, distance_m: float, heading_deg: float
) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lon) along ``heading_deg`` (spherical earth)."""
    d = distance_m / EARTH_RADIUS_M
    h = np.radians(heading_deg)
    p1, l1 = np.radians(lat), np.radians(lon)
    p2 = np.arcsin(np.sin(p1) * np.cos(d) + np.cos(p1) * np.sin(d) * np.cos(h))
    l2 = l1 + np.arctan2(np.sin(h) * np.sin(d) * np.cos(p1), np.cos(d) - np.sin(p1) * np.sin(p2))
    return float(np.degrees(p2)), float((np.degrees(l2) + 540.0) % 360.0 - 180.0)


@dataclass(frozen=True)
class Route:
    """Waypoints (``lat``, ``lon``, ``alt_m``; k+1 points), cumulative distance ``cum_m`` and per
    segment ``road_class`` (0 urban, 1 rural, 2 highway), ``bearing`` (deg) and ``grade``."""

    lat: F64
    lon: F64
    alt_m: F64
    cum_m: F64
    road_class: I8
    bearing: F64
    grade: F64

    @property
    def length_m(self) -> float:
        """Route length along the waypoints, m."""
        return float(self.cum_m[-1])

    @property
    def segments(self) -> int:
        """Number of segments (waypoints minus one)."""
        return int(self.road_class.shape[0])


def plan_route(
    rng: np.random.Generator,
    start: tuple[float, float, float],
    end: tuple[float, float, float],
    *,
    urban_radius_m: float = 6000.0,
    hilliness_m: float = 20.0,
) -> Route:
    """A route from ``start`` to ``end`` (each ``(lat, lon, elevation_m)``).

    Raises:
        ValueError: start and end are less than 50 m apart.
    """
    lat0, lon0, alt0 = start
    lat1, lon1, alt1 = end
    straight = float(haversine_m(lat0, lon0, lat1, lon1))
    if straight < 50.0:
        raise ValueError(f"route endpoints are {straight:.0f} m apart; expected at least 50 m")
    k = int(np.clip(np.ceil(straight / 300.0), 4, 600))
    s = np.linspace(0.0, 1.0, k + 1)
    # Great-circle interpolation (slerp on unit vectors).
    v0 = _unit(lat0, lon0)
    v1 = _unit(lat1, lon1)
    omega = np.arccos(np.clip(np.dot(v0, v1), -1.0, 1.0))
    w0 = np.sin((1 - s) * omega) / np.sin(omega)
    w1 = np.sin(s * omega) / np.sin(omega)
    pts = w0[:, None] * v0 + w1[:, None] * v1
    lat = np.degrees(np.arcsin(np.clip(pts[:, 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
    # Sideways meander: a few smooth harmonics, pinned to zero at both ends.
    amplitude = min(0.12 * straight, 4000.0)
    meander = np.zeros_like(s)
    for harmonic in (1, 2, 3, 5):
        meander += (
            rng.normal(0.0, 1.0) / harmonic * np.sin(np.pi * harmonic * s + rng.uniform(0, 0.3))
        )
    meander *= amplitude / max(np.abs(meander).max(), 1e-9) * np.sin(np.pi * s)
    # Small-scale wiggle that real street grids have, also pinned at the ends.
    wiggle = rng.normal(0.0, 1.0, k + 1).cumsum()
    wiggle -= np.linspace(wiggle[0], wiggle[-1], k + 1)
    meander += (
        25.0 * wiggle / max(np.abs(wiggle).max(), 1e-9) * np.minimum(1.0, 10 * np.sin(np.pi * s))
    )
    normal = (bearing_deg(lat0, lon0, lat1, lon1) + 90.0) % 360.0
    m_per_deg_lat = np.pi * EARTH_RADIUS_M / 180.0
    lat = lat + meander * np.cos(np.radians(normal)) / m_per_deg_lat
    lon = lon + meander * np.sin(np.radians(normal)) / (m_per_deg_lat * np.cos(np.radians(lat)))
    seg = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    length = cum[-1]
    # Road classes by distance from either end.
    mid = cum[:-1] + seg / 2
    from_end = np.minimum(mid, length - mid)
    road = np.where(from_end < urban_radius_m, URBAN, RURAL).astype(np.int8)
    if straight > 25_000.0:
        road[from_end > urban_radius_m + 4000.0] = HIGHWAY
    # Altitude: linear between the ends plus undulation; grades clipped to ±6 %.
    undulation = np.zeros_like(cum)
    for wavelength in (1500.0, 4000.0, 11000.0):
        undulation += rng.uniform(0.3, 1.0) * np.sin(
            2 * np.pi * cum / wavelength + rng.uniform(0, 2 * np.pi)
        )
    undulation *= hilliness_m / 2.0 * np.sin(np.pi * cum / length)
    alt = alt0 + (alt1 - alt0) * cum / length + undulation
    grade = np.clip(np.diff(alt) / np.maximum(seg, 1.0), -0.06, 0.06)
    alt = np.concatenate([[alt0], alt0 + np.cumsum(grade * seg)])
    alt += (alt1 - alt[-1]) * cum / length  # land on the destination's elevation
    grade = np.diff(alt) / np.maximum(seg, 1.0)
    bearing = bearing_deg(lat[:-1], lon[:-1], lat[1:], lon[1:])
    return Route(lat, lon, alt, cum, road, bearing, grade)


def _unit(lat: float, lon: float) -> F64:
    p, l = np.radians(lat), np.radians(lon)
    return np.array([np.cos(p) * np.cos(l), np.cos(p) * np.sin(l), np.sin(p)])
