"""Vehicle identification numbers (ISO 3779): their form and the check digit of position 9."""

from __future__ import annotations

import re
from typing import Final

#: The characters a VIN may use: digits and capitals without I, O and Q (confusable with 1, 0).
VIN_CHARACTERS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_RE: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")

# 49 CFR 565.15: transliteration of letters to numbers and the weight of each position.
_TRANSLITERATION: Final = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit(vin: str) -> str:
    """The check character of a 17-character VIN (its own position 9 is ignored)."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_vin(text: object) -> bool:
    """True if ``text`` is a string of 17 characters from ``VIN_CHARACTERS`` (ISO 3779)."""
    return isinstance(text, str) and _VIN_RE.fullmatch(text) is not None
