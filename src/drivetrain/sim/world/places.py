"""Regions, their cities (real coordinates) and a simple climate for each city.

Coordinates are city-centre WGS-84 positions, elevations the city's typical elevation, and the
climate three numbers from the usual climate normals: annual mean temperature, the seasonal
half-range (warmest minus coldest monthly mean, halved) and a typical diurnal half-range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, get_args

from drivetrain.core.errors import SimulationConfigError

RegionCode = Literal["EU", "US", "CN"]
REGION_CODES: Final[tuple[RegionCode, ...]] = get_args(RegionCode)


@dataclass(frozen=True)
class City:
    """A city: centre position, elevation (m), UTC offset (h, standard time) and climate (°C)."""

    name: str
    latitude: float
    longitude: float
    elevation_m: float
    utc_offset_h: float
    mean_temp_c: float
    seasonal_amplitude_c: float
    diurnal_amplitude_c: float
    radius_km: float = 12.0  # extent of the urban area for homes and workplaces

    def ambient_c(self, utc_s: float) -> float:
        """Air temperature (°C) at Unix time ``utc_s``: a seasonal sine (coldest mid-January)
        plus a diurnal sine (warmest at 15:00 local time)."""
        day_of_year = (utc_s / 86400.0) % 365.25
        local_hour = ((utc_s / 3600.0) + self.utc_offset_h) % 24.0
        seasonal = -self.seasonal_amplitude_c * math.cos(
            2 * math.pi * (day_of_year - 15.0) / 365.25
        )
        diurnal = -self.diurnal_amplitude_c * math.cos(2 * math.pi * (local_hour - 15.0) / 24.0)
        return self.mean_temp_c + seasonal + diurnal


@dataclass(frozen=True)
class Region:
    """A market region: its cities, driving side facts and highway speed scaling."""

    code: RegionCode
    cities: tuple[City, ...]
    highway_speed_scale: float  # scales the highway speed library to local limits
    hilliness_m: float  # amplitude of terrain undulation along routes

    def city(self, name: str) -> City:
        """The region's city called ``name``.

        Raises:
            SimulationConfigError: the region has no such city.
        """
        for c in self.cities:
            if c.name == name:
                return c
        raise SimulationConfigError(
            f"region {self.code} has no city {name!r}; expected one of {[c.name for c in self.cities]}"
        )


REGIONS: Final[dict[RegionCode, Region]] = {
    "EU": Region(
        "EU",
        (
            City("Berlin", 52.5200, 13.4050, 34, 1, 10.3, 9.5, 4.0),
            City("Munich", 48.1372, 11.5756, 519, 1, 9.1, 9.5, 5.0),
            City("Paris", 48.8566, 2.3522, 35, 1, 12.4, 8.0, 4.0),
            City("Lyon", 45.7640, 4.8357, 173, 1, 12.5, 9.5, 5.0),
            City("Amsterdam", 52.3676, 4.9041, -2, 1, 10.5, 7.0, 3.5),
            City("Milan", 45.4642, 9.1900, 120, 1, 13.5, 10.5, 4.5),
            City("Zagreb", 45.8150, 15.9819, 158, 1, 11.7, 10.5, 5.0),
        ),
        highway_speed_scale=1.25,
        hilliness_m=25.0,
    ),
    "US": Region(
        "US",
        (
            City("San Francisco", 37.7749, -122.4194, 16, -8, 14.6, 3.0, 4.0),
            City("San Jose", 37.3382, -121.8863, 25, -8, 16.0, 5.0, 6.0),
            City("Los Angeles", 34.0522, -118.2437, 89, -8, 18.6, 4.5, 5.0),
            City("Detroit", 42.3314, -83.0458, 190, -5, 10.0, 12.5, 5.0),
            City("Ann Arbor", 42.2808, -83.7430, 256, -5, 9.5, 12.5, 5.5),
            City("Austin", 30.2672, -97.7431, 149, -6, 20.9, 8.5, 6.0),
            City("Seattle", 47.6062, -122.3321, 53, -8, 11.8, 6.5, 4.0),
        ),
        highway_speed_scale=1.15,
        hilliness_m=20.0,
    ),
    "CN": Region(
        "CN",
        (
            City("Shanghai", 31.2304, 121.4737, 4, 8, 17.1, 11.5, 3.5),
            City("Hangzhou", 30.2741, 120.1551, 19, 8, 17.5, 12.0, 4.0),
            City("Suzhou", 31.2990, 120.5853, 5, 8, 16.5, 12.0, 4.0),
            City("Beijing", 39.9042, 116.4074, 44, 8, 12.9, 15.0, 5.5),
            City("Shenzhen", 22.5431, 114.0579, 5, 8, 23.0, 6.5, 3.5),
            City("Guangzhou", 23.1291, 113.2644, 21, 8, 22.6, 7.0, 4.0),
        ),
        highway_speed_scale=1.2,
        hilliness_m=15.0,
    ),
}


def get_region(code: str) -> Region:
    """The region with ``code`` (``EU``, ``US``, ``CN``).

    Raises:
        SimulationConfigError: unknown region code.
    """
    try:
        return REGIONS[code]  # type: ignore[index]
    except KeyError:
        raise SimulationConfigError(
            f"region {code!r} is not simulated; expected one of {list(REGION_CODES)}"
        ) from None
