"""Charging places and sessions: home and workplace AC, public DC fast chargers.

The charger only *offers* power; what flows is decided by the vehicle physics — the on-board
charger limit for AC, and for DC the BMS current limit that tapers above ~50–55 % SoC and the
constant-voltage phase near full (CC-CV), so a 150 kW charger rarely delivers 150 kW for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

ChargerKind = Literal["home_ac", "work_ac", "public_dc"]

#: Public DC charger ratings (kW) and how common each is.
DC_RATINGS_KW: Final = (50.0, 100.0, 150.0)
DC_RATING_SHARE: Final = (0.3, 0.3, 0.4)


def draw_dc_rating_w(rng: np.random.Generator) -> float:
    """Rating of the public DC charger a driver finds, W."""
    return 1000.0 * float(rng.choice(DC_RATINGS_KW, p=DC_RATING_SHARE))


@dataclass
class ChargingSession:
    """One plug-in: where, which charger, and what it delivered (grid side)."""

    vin: str
    kind: ChargerKind
    rated_kw: float
    start_s: float
    start_soc: float
    latitude: float
    longitude: float
    end_s: float = float("nan")
    end_soc: float = float("nan")
    energy_kwh: float = 0.0
    max_power_kw: float = 0.0

    def to_row(self) -> dict[str, object]:
        """A flat record for the ground-truth tables."""
        return {
            "vin": self.vin,
            "kind": self.kind,
            "rated_kw": self.rated_kw,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "start_soc_pct": 100.0 * self.start_soc,
            "end_soc_pct": 100.0 * self.end_soc,
            "energy_kwh": self.energy_kwh,
            "max_power_kw": self.max_power_kw,
            "latitude": self.latitude,
            "longitude": self.longitude,
        }
