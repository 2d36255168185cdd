"""Data-residency regions: where a vehicle's data may be stored and processed.

A vehicle belongs to exactly one region (set when it is registered); its telemetry is written
only under that region's storage root. The codes are the platform's own, not ISO codes: a
region is a legal data-residency area (EU GDPR, China PIPL, ...), not a country.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

from drivetrain.core.errors import BadInputError

Region = Literal["EU", "US", "CN", "JP"]
REGIONS: Final[tuple[Region, ...]] = get_args(Region)

REGION_NAMES: Final[dict[Region, str]] = {
    "EU": "European Union / EEA (GDPR)",
    "US": "United States",
    "CN": "China (PIPL: data stays in-country)",
    "JP": "Japan (APPI)",
}


def is_region(value: object) -> TypeGuard[Region]:
    """True for a known region code."""
    return isinstance(value, str) and value in REGIONS


def parse_region(value: str) -> Region:
    """Return ``value`` as a region code.

    Raises:
        BadInputError: not one of ``REGIONS``.
    """
    if not is_region(value):
        raise BadInputError(f"region {value!r} is not known; expected one of {', '.join(REGIONS)}")
    return value
