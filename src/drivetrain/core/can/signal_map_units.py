"""The unit conversions a DBC→VSS signal map may name (``from_unit``/``to_unit``).

Each unit is an affine map onto its quantity's SI unit: ``si = value * scale + offset``.
Converting between two units of one quantity composes two such maps into one
``UnitConversion``. Names are matched case-insensitively, and common DBC spellings
(``kph``, ``degC``, ``%``) are accepted as aliases of the VSS unit names (``km/h``,
``celsius``, ``percent``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import SignalMapError


@dataclass(frozen=True)
class UnitConversion:
    """``converted = value * factor + offset``."""

    factor: float = 1.0
    offset: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.factor == 1.0 and self.offset == 0.0

    def apply(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The converted values (a new array unless the conversion is the identity)."""
        if self.is_identity:
            return values
        return values * self.factor + self.offset


@dataclass(frozen=True)
class _Unit:
    quantity: str
    scale: float
    offset: float = 0.0


_UNITS: dict[str, _Unit] = {
    # speed (SI: m/s)
    "m/s": _Unit("speed", 1.0),
    "km/h": _Unit("speed", 1 / 3.6),
    "mph": _Unit("speed", 0.44704),
    # temperature (SI: kelvin)
    "kelvin": _Unit("temperature", 1.0),
    "celsius": _Unit("temperature", 1.0, 273.15),
    "fahrenheit": _Unit("temperature", 5 / 9, 273.15 - 32 * 5 / 9),
    # length (SI: m)
    "m": _Unit("length", 1.0),
    "mm": _Unit("length", 1e-3),
    "cm": _Unit("length", 1e-2),
    "km": _Unit("length", 1e3),
    "mi": _Unit("length", 1609.344),
    "ft": _Unit("length", 0.3048),
    # pressure (SI: Pa)
    "pa": _Unit("pressure", 1.0),
    "hpa": _Unit("pressure", 1e2),
    "kpa": _Unit("pressure", 1e3),
    "bar": _Unit("pressure", 1e5),
    "psi": _Unit("pressure", 6894.757293168361),
    # proportion (SI: ratio 0..1)
    "ratio": _Unit("proportion", 1.0),
    "percent": _Unit("proportion", 0.01),
    # angle (SI: rad) and angular speed (SI: rad/s)
    "rad": _Unit("angle", 1.0),
    "degrees": _Unit("angle", math.pi / 180),
    "rad/s": _Unit("angular speed", 1.0),
    "degrees/s": _Unit("angular speed", math.pi / 180),
    "rpm": _Unit("angular speed", 2 * math.pi / 60),
    # power (SI: W) and energy (SI: J)
    "w": _Unit("power", 1.0),
    "kw": _Unit("power", 1e3),
    "hp": _Unit("power", 745.6998715822702),
    "j": _Unit("energy", 1.0),
    "wh": _Unit("energy", 3600.0),
    "kwh": _Unit("energy", 3.6e6),
    # electrical (SI: V, A)
    "v": _Unit("voltage", 1.0),
    "mv": _Unit("voltage", 1e-3),
    "a": _Unit("current", 1.0),
    "ma": _Unit("current", 1e-3),
    # volume (SI: m^3) and time (SI: s)
    "l": _Unit("volume", 1e-3),
    "ml": _Unit("volume", 1e-6),
    "gal": _Unit("volume", 3.785411784e-3),
    "s": _Unit("time", 1.0),
    "ms": _Unit("time", 1e-3),
    "min": _Unit("time", 60.0),
    "h": _Unit("time", 3600.0),
}

_ALIASES: dict[str, str] = {
    "kph": "km/h",
    "kmh": "km/h",
    "k": "kelvin",
    "degc": "celsius",
    "°c": "celsius",
    "degf": "fahrenheit",
    "°f": "fahrenheit",
    "%": "percent",
    "deg": "degrees",
    "°": "degrees",
    "deg/s": "degrees/s",
    "°/s": "degrees/s",
    "1/min": "rpm",
}

#: Every unit name accepted by ``conversion_between`` (aliases excluded), sorted.
KNOWN_UNITS: tuple[str, ...] = tuple(sorted(_UNITS))


def canonical_unit(name: str) -> str | None:
    """The table's name for unit ``name`` (case-insensitive, aliases resolved), or None."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in _UNITS else None


def conversion_between(from_unit: str, to_unit: str) -> UnitConversion:
    """The conversion from ``from_unit`` to ``to_unit``.

    Raises:
        SignalMapError: a unit is not in the table, or the two measure different quantities.
    """
    units = []
    for name in (from_unit, to_unit):
        canonical = canonical_unit(name)
        if canonical is None:
            raise SignalMapError(
                f"unit {name!r} is not a known unit; expected one of {', '.join(KNOWN_UNITS)}"
            )
        units.append(_UNITS[canonical])
    src, dst = units
    if src.quantity != dst.quantity:
        raise SignalMapError(
            f"cannot convert {from_unit!r} ({src.quantity}) to {to_unit!r} ({dst.quantity})"
        )
    if src == dst:
        return UnitConversion()
    # si = v * s1 + o1 ;  out = (si - o2) / s2
    return UnitConversion(factor=src.scale / dst.scale, offset=(src.offset - dst.offset) / dst.scale)
