"""Fleet insights: remaining useful life, battery end of life, trip energy and range, smart
charging, predictive maintenance and service scheduling (see docs/insights.md).

The modules need the ``insights`` extra (LightGBM, scikit-learn, SciPy, OR-Tools), imported
lazily: importing this package costs nothing, and a call that needs a missing library raises
``MissingExtraError`` naming the extra.
"""

from drivetrain.cloud.insights._deps import MissingExtraError

__all__ = ["MissingExtraError"]
