"""Fleet insights: remaining useful life, battery end of life, trip energy and range, smart
charging, predictive maintenance and service scheduling (see docs/insights.md).

The platform around the models: ``registry`` (versioned artifacts with model cards),
``training`` (train the maintenance model from the lake, score its latest state),
``fleet_models`` (the energy/range and battery end-of-life models as artifacts trained and
scored the same way), ``service`` (score runs, predictions and estimates in the state database), ``scheduler`` (the control plane's scoring loop),
``booking`` (service centres and appointments sent to cars), ``charging_plans`` (schedules
sent to cars), ``api`` (``/v1/insights``).

The modules need the ``insights`` extra (LightGBM, scikit-learn, SciPy, OR-Tools), imported
lazily: importing this package costs nothing, and a call that needs a missing library raises
``MissingExtraError`` naming the extra.
"""

from drivetrain.cloud.insights._deps import MissingExtraError

__all__ = ["MissingExtraError"]
