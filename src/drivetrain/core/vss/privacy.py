"""The privacy category of a VSS signal, decided from its path by one ordered rule.

Every signal belongs to exactly one category; the privacy filter in ingestion and the consent
model key on it. The rule is ordered and the first match wins, so a signal that is both
"cabin" and "diagnostics" (``Vehicle.Cabin.Seat….IsError``) is diagnostics: a fault flag says
nothing about the person in the seat.

1. **location** — where the vehicle is or was: ``Vehicle.CurrentLocation.*``, any
   ``*.Location.*`` branch (e.g. the charging location) and the navigation destination.
2. **diagnostics** — faults, wear and service state: ``Vehicle.Diagnostics.*``,
   ``Vehicle.OBD.*``, ``Vehicle.Service.*``, ECU health, DTC lists, error codes, ``IsError``,
   ``IsDefect``, anything named ``*Wear*``/``*Worn*``, state of health, remaining life.
3. **cabin** — the people and the space inside: ``Vehicle.Cabin.*``, ``Vehicle.Driver.*``,
   ``Vehicle.Occupant.*``.
4. **driving_behaviour** — how the vehicle is driven: speed, acceleration, angular velocity,
   distance and trip counters, pedals and throttle position, steering, wheel speeds, gear
   choice, direction indicators, horn, and ADAS usage (all of ``Vehicle.ADAS.*``).
5. **technical** — everything else (powertrain state, battery, charging, body, exterior).
"""

from __future__ import annotations

import re
from fnmatch import translate
from typing import Final, Literal, TypeGuard, get_args

PrivacyCategory = Literal["location", "driving_behaviour", "cabin", "diagnostics", "technical"]

PRIVACY_CATEGORIES: Final[tuple[PrivacyCategory, ...]] = get_args(PrivacyCategory)

#: The ordered rule: (category, glob patterns over the dotted path). ``*`` matches any run of
#: characters, dots included. The first category with a matching pattern wins.
PRIVACY_RULES: Final[tuple[tuple[PrivacyCategory, tuple[str, ...]], ...]] = (
    (
        "location",
        (
            "Vehicle.CurrentLocation.*",
            "*.Location.*",
            "Vehicle.Cabin.Infotainment.Navigation.DestinationSet.*",
        ),
    ),
    (
        "diagnostics",
        (
            "Vehicle.Diagnostics.*",
            "Vehicle.OBD.*",
            "Vehicle.Service.*",
            "Vehicle.ControlUnit.*.Health.*",
            "*.ErrorCodes",
            "*.DTC*",
            "*.IsError",
            "*.IsDefect",
            "*Wear*",
            "*.IsBrakesWorn",
            "*.IsWipersWorn",
            "*.StateOfHealth",
            "*.LifeRemaining",
            "Vehicle.IsBrokenDown",
        ),
    ),
    (
        "cabin",
        (
            "Vehicle.Cabin.*",
            "Vehicle.Driver.*",
            "Vehicle.Occupant.*",
        ),
    ),
    (
        "driving_behaviour",
        (
            "Vehicle.Speed",
            "Vehicle.AverageSpeed",
            "Vehicle.IsMoving",
            "Vehicle.Acceleration.*",
            "Vehicle.AngularVelocity.*",
            "Vehicle.TraveledDistance*",
            "Vehicle.TripDuration",
            "Vehicle.TripMeterReading",
            "Vehicle.StartTime",
            "Vehicle.ADAS.*",
            "Vehicle.Chassis.Accelerator.*",
            "Vehicle.Chassis.Brake.*",
            "Vehicle.Chassis.SteeringWheel.Angle",
            "Vehicle.Chassis.Axle.*.SteeringAngle",
            "Vehicle.Chassis.Axle.*.Wheel.*.Speed",
            "Vehicle.Powertrain.Transmission.CurrentGear",
            "Vehicle.Powertrain.Transmission.SelectedGear",
            "Vehicle.Powertrain.CombustionEngine.TPS",
            "Vehicle.Body.Lights.DirectionIndicator.*",
            "Vehicle.Body.Horn.*",
        ),
    ),
)

_COMPILED: Final[tuple[tuple[PrivacyCategory, re.Pattern[str]], ...]] = tuple(
    (category, re.compile("|".join(f"(?:{translate(p)})" for p in patterns)))
    for category, patterns in PRIVACY_RULES
)


def is_privacy_category(value: object) -> TypeGuard[PrivacyCategory]:
    """True if ``value`` names one of the five privacy categories."""
    return isinstance(value, str) and value in PRIVACY_CATEGORIES


#: Categories about people: withheld from state reads unless a purpose covers them, and kept
#: in the vehicle's region store (``drivetrain.cloud.infra.region_stores``).
PERSONAL_CATEGORIES: Final[frozenset[str]] = frozenset({"location", "driving_behaviour", "cabin"})


def privacy_category_for(path: str) -> PrivacyCategory:
    """The privacy category the rule assigns to the VSS ``path`` (first match wins)."""
    for category, pattern in _COMPILED:
        if pattern.match(path):
            return category
    return "technical"
