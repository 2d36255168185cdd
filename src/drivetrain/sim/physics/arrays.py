"""Small array helpers for the hot step.

``np.clip`` goes through several Python layers per call (~15 µs); the step calls it dozens of
times on small arrays, so this two-ufunc version keeps a fleet step cheap for small fleets.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def clip(x: Any, lo: float | Any | None, hi: float | Any | None) -> Any:
    """``np.clip`` semantics for float arrays and scalars; ``None`` leaves that side open."""
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x
