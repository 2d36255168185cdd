"""Deterministic 17-character vehicle identification numbers with an ISO 3779 check digit.

Layout: a manufacturer code per region (``DTE``/``DTU``/``DTC``), a five-character model code,
the check digit (position 9, computed as North American VINs do), model year ``S`` (2025),
plant ``D`` and a six-digit serial.
"""

from __future__ import annotations

from typing import Final

_TRANSLITERATION: Final = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_WMI: Final = {"EU": "DTE", "US": "DTU", "CN": "DTC"}
_MODEL_CODE: Final = {"compact-hatch-50": "CH50A", "midsize-suv-77": "SU77A"}


def check_digit(vin: str) -> str:
    """The ISO 3779 / FMVSS 565 check character for a 17-character VIN (position 9 ignored)."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def make_vin(region: str, model_name: str, serial: int) -> str:
    """The VIN of vehicle number ``serial`` of ``model_name`` sold in ``region``."""
    body = f"{_WMI.get(region, 'DTX')}{_MODEL_CODE.get(model_name, 'GEN0A')}0SD{serial % 1_000_000:06d}"
    return body[:8] + check_digit(body) + body[9:]
