"""Deterministic 17-character vehicle identification numbers with an ISO 3779 check digit.

Layout: a manufacturer code per region (``DTE``/``DTU``/``DTC``), a five-character model code,
the check digit (position 9, computed as North American VINs do), model year ``S`` (2025),
plant ``D`` and a six-digit serial.
"""

from __future__ import annotations

from typing import Final

from drivetrain.core.vin import vin_check_digit as check_digit

_WMI: Final = {"EU": "DTE", "US": "DTU", "CN": "DTC"}
_MODEL_CODE: Final = {"compact-hatch-50": "CH50A", "midsize-suv-77": "SU77A"}


def make_vin(region: str, model_name: str, serial: int) -> str:
    """The VIN of vehicle number ``serial`` of ``model_name`` sold in ``region``.

    The serial wraps at 1,000,000 (six digits).
    """
    body = f"{_WMI.get(region, 'DTX')}{_MODEL_CODE.get(model_name, 'GEN0A')}0SD{serial % 1_000_000:06d}"
    return body[:8] + check_digit(body) + body[9:]
