"""What each privacy category means, for people choosing what to consent to.

Pure data over a VSS catalog: a one-line meaning per category, whether the default consent
covers it, how many of the catalog's signals it holds, and a few example paths (preferred
well-known signals first, then the catalog's own order). The category of a path is decided
by ``drivetrain.core.vss.privacy``; nothing here changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drivetrain.cloud.privacy.service import DEFAULT_CONSENT
from drivetrain.core.vss import PRIVACY_CATEGORIES, Catalog, PrivacyCategory

#: One line per category: what a person shares by consenting to it.
CATEGORY_MEANINGS: Final[dict[PrivacyCategory, str]] = {
    "location": "Where the vehicle is or was: GNSS position, heading, charging and "
    "navigation locations.",
    "driving_behaviour": "How the vehicle is driven: speed, acceleration, pedals, steering, "
    "gear choice, trips and driver-assistance use.",
    "cabin": "The people and the space inside: seats and belts, doors and windows, climate, "
    "driver attention.",
    "diagnostics": "Faults, wear and service state: trouble codes, error flags, brake and "
    "clutch wear, battery state of health.",
    "technical": "Everything else about the machine: powertrain, battery and charging state, "
    "body and exterior.",
}

# Examples shown first when the catalog has them in that category (a rule change that moves
# one elsewhere simply drops it from the list).
_PREFERRED_EXAMPLES: Final[dict[PrivacyCategory, tuple[str, ...]]] = {
    "location": ("Vehicle.CurrentLocation.Latitude", "Vehicle.CurrentLocation.Longitude"),
    "driving_behaviour": ("Vehicle.Speed", "Vehicle.Chassis.Accelerator.PedalPosition"),
    "cabin": ("Vehicle.Cabin.Seat.Row1.DriverSide.IsBelted", "Vehicle.Driver.FatigueLevel"),
    "diagnostics": ("Vehicle.Diagnostics.DTCList", "Vehicle.Powertrain.TractionBattery.StateOfHealth"),
    "technical": (
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "Vehicle.Powertrain.TractionBattery.Charging.IsCharging",
    ),
}


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    """One privacy category as shown to people: meaning, default, size and example paths."""

    name: PrivacyCategory
    meaning: str
    default_consent: bool
    signal_count: int
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``examples`` as a list)."""
        return {
            "name": self.name,
            "meaning": self.meaning,
            "default_consent": self.default_consent,
            "signal_count": self.signal_count,
            "examples": list(self.examples),
        }


def describe_categories(catalog: Catalog, *, examples: int = 3) -> tuple[CategoryInfo, ...]:
    """The five categories in their canonical order, with up to ``examples`` paths each.

    Raises:
        ValueError: ``examples`` is negative.
    """
    if examples < 0:
        raise ValueError(f"examples must be >= 0, got {examples}")
    result = []
    for name in PRIVACY_CATEGORIES:
        paths = catalog.in_category(name).paths
        present = set(paths)
        chosen = [p for p in _PREFERRED_EXAMPLES[name] if p in present]
        chosen += [p for p in paths if p not in chosen]
        result.append(
            CategoryInfo(
                name=name,
                meaning=CATEGORY_MEANINGS[name],
                default_consent=name in DEFAULT_CONSENT,
                signal_count=len(paths),
                examples=tuple(chosen[:examples]),
            )
        )
    return tuple(result)
