"""Lazy imports of the optional machine-learning libraries (the ``insights`` extra).

The core install runs without them; a function that needs one imports it through
``require`` and gets a ``MissingExtraError`` naming the extra to install instead of a bare
``ModuleNotFoundError`` at import time.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from drivetrain.core.errors import ConfigurationError

#: Import name → PyPI distribution of each optional library.
_DISTRIBUTIONS = {
    "lightgbm": "lightgbm",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "ortools": "ortools",
    "highspy": "highspy",
    "joblib": "joblib",
}


class MissingExtraError(ConfigurationError):
    """An insights feature needs a library from the ``insights`` extra that is not installed."""


def require(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``"lightgbm"``, ``"sklearn.cluster"``) or explain the extra.

    Raises:
        MissingExtraError: the library is not installed; the message names the extra.
    """
    top = module.split(".", 1)[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".", 1)[0] != top:
            raise
        dist = _DISTRIBUTIONS.get(top, top)
        raise MissingExtraError(
            f"this needs {dist}, which is part of the 'insights' extra: "
            f"pip install 'drivetrain[insights]'"
        ) from e
