"""Drivers: driving styles, target speeds from the standard cycles, and daily trip schedules.

Target speed while driving comes from a *speed library* per road class, stitched from the
standard cycles' phases: urban = UDDS + WLTC low and medium, rural = WLTC high, highway = the
cruise part of HWFET scaled to the region's limits. A driver walks through the library in
real time, so stops, accelerations and cruising have the statistics of the standard cycles;
the driver's style scales speeds and caps acceleration and braking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from drivetrain.sim.physics.cycles import load_cycle
from drivetrain.sim.world.places import City

F64 = npt.NDArray[np.float64]

StyleName = Literal["calm", "normal", "sporty"]
STYLE_NAMES: Final[tuple[StyleName, ...]] = get_args(StyleName)


@dataclass(frozen=True)
class DriverStyle:
    """How a driver drives: speed relative to traffic, and acceleration/braking limits (m/s²)."""

    name: StyleName
    speed_factor: float
    accel_limit_mps2: float
    decel_limit_mps2: float
    share: float  # of the driver population


STYLES: Final[dict[StyleName, DriverStyle]] = {
    "calm": DriverStyle("calm", 0.94, 1.4, 2.0, 0.3),
    "normal": DriverStyle("normal", 1.0, 2.3, 3.0, 0.5),
    "sporty": DriverStyle("sporty", 1.07, 3.8, 4.5, 0.2),
}


@dataclass(frozen=True)
class SpeedLibrary:
    """1 Hz target-speed traces (m/s) per road class: index 0 urban, 1 rural, 2 highway."""

    traces: tuple[F64, F64, F64]

    @classmethod
    def standard(cls, highway_scale: float = 1.2) -> SpeedLibrary:
        """Traces from the packaged cycles; ``highway_scale`` lifts HWFET's cruise to local limits."""
        wltc = load_cycle("wltc_class3").speed_mps
        udds = load_cycle("udds").speed_mps
        hwfet = load_cycle("hwfet").speed_mps
        urban = np.concatenate([udds, wltc[:1023]])
        rural = wltc[1023:1478]
        fast = np.flatnonzero(hwfet > 40 * 0.44704)
        highway = hwfet[fast[0] : fast[-1] + 1] * highway_scale
        return cls((urban, rural, highway))

    def lengths(self) -> npt.NDArray[np.int64]:
        """Samples per trace."""
        return np.array([len(t) for t in self.traces])

    def packed(self) -> tuple[F64, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """All traces in one array with each class's start offset and length (for gathers)."""
        lengths = self.lengths()
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.concatenate(self.traces), offsets, lengths


PlaceKind = Literal["home", "work", "errand", "away"]


@dataclass(frozen=True)
class Place:
    """A place a vehicle parks: position, elevation and what it is."""

    kind: PlaceKind
    latitude: float
    longitude: float
    elevation_m: float
    city: str


@dataclass(frozen=True)
class DriverProfile:
    """One vehicle's driver and habits (seeded, fixed for the simulation)."""

    style: DriverStyle
    commuter: bool
    home: Place
    work: Place
    errands: tuple[Place, ...]
    home_city: City
    has_home_charger: bool
    home_charger_w: float
    work_charger_w: float  # 0 when the workplace has none
    plug_in_below_soc: float  # plugs in at home when SoC is below this
    charge_limit: float
    dc_below_soc: float  # seeks a DC charger on a trip below this
    cabin_setpoint_c: float
    leave_home_h: float  # local time, weekdays
    leave_work_h: float
    away: tuple[Place, ...] = ()  # other cities of the region for day trips (highway driving)


def _place_near(rng: np.random.Generator, city: City, kind: PlaceKind, radius_km: float) -> Place:
    from drivetrain.sim.world.routes import offset_point

    distance = radius_km * 1000.0 * np.sqrt(rng.uniform(0.02, 1.0))
    lat, lon = offset_point(city.latitude, city.longitude, distance, rng.uniform(0, 360))
    elevation = city.elevation_m + rng.normal(0.0, 8.0)
    return Place(kind, lat, lon, elevation, city.name)


def draw_profile(
    rng: np.random.Generator, city: City, neighbours: tuple[City, ...]
) -> DriverProfile:
    """A driver living in ``city``; a fifth commute to a neighbouring city within 60 km, and
    day trips go to the region's other cities within 350 km."""
    from drivetrain.sim.world.routes import haversine_m

    style_names = list(STYLES)
    style = STYLES[
        style_names[int(rng.choice(len(style_names), p=[STYLES[s].share for s in style_names]))]
    ]
    home = _place_near(rng, city, "home", city.radius_km)
    near = [
        c
        for c in neighbours
        if c.name != city.name
        and haversine_m(c.latitude, c.longitude, city.latitude, city.longitude) < 60_000
    ]
    work_city = near[int(rng.integers(len(near)))] if near and rng.random() < 0.2 else city
    work = _place_near(rng, work_city, "work", work_city.radius_km)
    errands = tuple(_place_near(rng, city, "errand", 8.0) for _ in range(3))
    has_home = bool(rng.random() < 0.7)
    reachable = [
        c
        for c in neighbours
        if c.name != city.name
        and haversine_m(c.latitude, c.longitude, city.latitude, city.longitude) < 350_000
    ]
    away = tuple(_place_near(rng, c, "away", 5.0) for c in reachable)
    return DriverProfile(
        style=style,
        commuter=bool(rng.random() < 0.75),
        home=home,
        work=work,
        errands=errands,
        home_city=city,
        has_home_charger=has_home,
        home_charger_w=float(rng.choice([7400.0, 11000.0])) if has_home else 0.0,
        work_charger_w=11000.0 if rng.random() < 0.2 else 0.0,
        plug_in_below_soc=float(rng.uniform(0.35, 0.9)),
        charge_limit=float(rng.choice([0.8, 0.9, 1.0], p=[0.5, 0.35, 0.15])),
        dc_below_soc=float(rng.uniform(0.12, 0.25)),
        cabin_setpoint_c=float(np.clip(rng.normal(21.0, 1.2), 17.0, 25.0)),
        leave_home_h=float(np.clip(rng.normal(7.6, 0.6), 5.5, 10.0)),
        leave_work_h=float(np.clip(rng.normal(17.0, 0.8), 14.5, 20.0)),
        away=away,
    )


def next_departure(
    rng: np.random.Generator, profile: DriverProfile, now_utc: float, at: PlaceKind
) -> tuple[float, Place]:
    """When the driver next leaves, and for where, given they are parked at ``at`` now.

    Weekday commuters go to work in the morning and home in the late afternoon, sometimes via
    an errand; everyone runs errands in the daytime and on weekends, and now and then drives
    to another city for the day (stays 2-6 h).
    """
    offset = profile.home_city.utc_offset_h * 3600.0
    local = now_utc + offset
    day_start = local - (local % 86400.0)
    weekday = int((day_start // 86400.0 + 3) % 7)  # 1970-01-01 was a Thursday; 0 = Monday

    def at_local(day: float, hour: float) -> float:
        return day + hour * 3600.0 - offset

    if at == "work":
        leave = at_local(day_start, profile.leave_work_h + rng.normal(0.0, 0.3))
        destination = profile.home if rng.random() < 0.75 else profile.errands[int(rng.integers(3))]
        return max(leave, now_utc + 600.0), destination
    if at == "away":
        return now_utc + rng.uniform(2.0, 6.0) * 3600.0, profile.home
    if at == "errand":
        return now_utc + rng.uniform(20.0, 90.0) * 60.0, profile.home
    # at home: find the next departure, day by day
    for day_index in range(8):
        day = day_start + day_index * 86400.0
        dow = (weekday + day_index) % 7
        if profile.commuter and dow < 5:
            leave = at_local(day, profile.leave_home_h + rng.normal(0.0, 0.25))
            if leave > now_utc + 300.0:
                return leave, profile.work
            evening = at_local(day, rng.uniform(18.5, 20.5))
            if rng.random() < 0.25 and evening > now_utc + 1800.0:
                return evening, profile.errands[int(rng.integers(3))]
        else:
            if profile.away and rng.random() < 0.1:
                leave = at_local(day, rng.uniform(8.5, 11.0))
                if leave > now_utc + 1800.0:
                    return leave, profile.away[int(rng.integers(len(profile.away)))]
            if rng.random() < 0.7:
                leave = at_local(day, rng.uniform(9.0, 18.0))
                if leave > now_utc + 1800.0:
                    return leave, profile.errands[int(rng.integers(3))]
    return now_utc + 86400.0, profile.errands[0]
