"""Small array helpers for the hot step.

``np.clip`` goes through several Python layers per call (~15 µs); the step calls it dozens of
times on small arrays, so this two-ufunc version keeps a fleet step cheap for small fleets.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def clip(x: Any, lo: Any, hi: Any) -> F64:
    """``np.clip`` semantics for float arrays; ``None`` leaves that side open."""
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return cast(F64, x)
