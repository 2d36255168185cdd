"""``RouteTable``: every vehicle's current route packed into flat arrays for vectorised lookup.

Assigning a route appends its waypoints to the packed buffers (compacted when the dead share
grows); looking up a position is a handful of gathers, whatever the fleet size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.arrays import clip
from drivetrain.sim.world.routes import Route

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RoutePosition:
    """Interpolated position on each vehicle's route (arrays of ``n``)."""

    latitude: F64
    longitude: F64
    altitude_m: F64
    bearing: F64
    grade: F64
    road_class: I64


class RouteTable:
    """Current route per vehicle: ``progress_m`` along it, ``length_m`` of it."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.progress_m = np.zeros(n)
        self.length_m = np.zeros(n)
        self._start = np.zeros(n, dtype=np.int64)  # first waypoint in the buffers
        self._count = np.full(n, 1, dtype=np.int64)  # waypoints
        self._segment = np.zeros(n, dtype=np.int64)  # current segment within the route
        self._lat = np.zeros(1)
        self._lon = np.zeros(1)
        self._alt = np.zeros(1)
        self._cum = np.zeros(1)
        self._class = np.zeros(1, dtype=np.int64)
        self._bearing = np.zeros(1)
        self._grade = np.zeros(1)
        self._used = 1
        self._live = 0

    def assign(self, vehicle: int, route: Route) -> None:
        """Give ``vehicle`` a new route, starting at its beginning."""
        k = len(route.cum_m)
        if self._used + k > len(self._cum):
            self._grow(k)
        a, b = self._used, self._used + k
        self._lat[a:b], self._lon[a:b], self._alt[a:b], self._cum[a:b] = (
            route.lat,
            route.lon,
            route.alt_m,
            route.cum_m,
        )
        self._class[a : b - 1] = route.road_class
        self._class[b - 1] = route.road_class[-1]
        self._bearing[a : b - 1] = route.bearing
        self._bearing[b - 1] = route.bearing[-1]
        self._grade[a : b - 1] = route.grade
        self._grade[b - 1] = 0.0
        self._live += k - int(self._count[vehicle])
        self._start[vehicle], self._count[vehicle] = a, k
        self._segment[vehicle] = 0
        self.progress_m[vehicle] = 0.0
        self.length_m[vehicle] = route.length_m
        self._used = b

    def _grow(self, needed: int) -> None:
        live = max(self._live, 1)
        if self._used > 4 * live + 4096:
            self._compact()
        if self._used + needed > len(self._cum):
            size = max(2 * len(self._cum), self._used + needed + 1024)
            for name in ("_lat", "_lon", "_alt", "_cum", "_class", "_bearing", "_grade"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[: self._used] = old[: self._used]
                setattr(self, name, new)

    def _compact(self) -> None:
        order = np.argsort(self._start)
        names = ("_lat", "_lon", "_alt", "_cum", "_class", "_bearing", "_grade")
        fresh = {name: [getattr(self, name)[:1]] for name in names}
        cursor = 1
        for v in order:
            a, k = int(self._start[v]), int(self._count[v])
            if k <= 1:
                self._start[v] = 0
                continue
            for name in names:
                fresh[name].append(getattr(self, name)[a : a + k])
            self._start[v] = cursor
            cursor += k
        for name in names:
            setattr(self, name, np.concatenate(fresh[name]))
        self._used = cursor

    def position(self, progress_m: F64) -> RoutePosition:
        """Where ``progress_m`` (per vehicle) lies on each route; advances segment pointers."""
        last = np.maximum(self._count - 2, 0)
        seg = self._segment
        for _ in range(64):  # a step crosses at most a few ~300 m segments
            nxt = self._start + np.minimum(seg + 1, self._count - 1)
            move = (seg < last) & (progress_m > self._cum[nxt])
            if not move.any():
                break
            seg = seg + move
        self._segment = seg
        i = self._start + seg
        j = self._start + np.minimum(seg + 1, self._count - 1)
        span = np.maximum(self._cum[j] - self._cum[i], 1e-9)
        f = clip((progress_m - self._cum[i]) / span, 0.0, 1.0)
        return RoutePosition(
            latitude=self._lat[i] + f * (self._lat[j] - self._lat[i]),
            longitude=self._lon[i] + f * (self._lon[j] - self._lon[i]),
            altitude_m=self._alt[i] + f * (self._alt[j] - self._alt[i]),
            bearing=self._bearing[i],
            grade=self._grade[i],
            road_class=self._class[i],
        )
