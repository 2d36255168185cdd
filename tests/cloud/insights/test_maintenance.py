"""Predictive maintenance on a simulated fleet: lake-shaped telemetry, held-out vehicles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from drivetrain.cloud.insights.maintenance import (
    MaintenanceDataError,
    MaintenanceModels,
    evaluate_alerts,
    failures_from_events,
    observation_frame,
    split_vehicles,
)
from drivetrain.cloud.insights.maintenance_data import simulate_history


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return simulate_history(60, seed=11, steps=2400, dt_s=5.0, sample_every_steps=30)


def test_telemetry_without_a_value_column_is_named() -> None:
    with pytest.raises(MaintenanceDataError, match="'value'"):
        observation_frame(pa.table({"vehicle": ["a"], "path": ["Vehicle.Speed"], "ts": [1.0]}))


def test_frame_has_one_row_per_vehicle_and_sample_in_time_order(history) -> None:  # type: ignore[no-untyped-def]
    frame = observation_frame(history.signals)
    assert len(np.unique(frame.vehicle)) == 60
    for vehicle in np.unique(frame.vehicle)[:5]:
        assert np.all(np.diff(frame.ts_s[frame.vehicle == vehicle]) > 0)


def test_failures_are_caught_ahead_on_held_out_vehicles(history, report_figure: Callable[[str], None]) -> None:  # type: ignore[no-untyped-def]
    frame = observation_frame(history.signals)
    failures = failures_from_events(history.events)
    train, _held = split_vehicles(list(history.vins), 0.3)
    in_train = np.isin(frame.vehicle, sorted(train))
    span = frame.ts_s.max() - frame.ts_s.min()
    models = MaintenanceModels(horizon_s=span / 6).fit(frame.take(in_train), failures)
    results = {e.component: e for e in evaluate_alerts(models, frame.take(~in_train), failures)}
    total = sum(e.failures for e in results.values())
    caught = sum(e.caught for e in results.values())
    report_figure(
        "maintenance, 18 held-out simulated vehicles: "
        + ", ".join(f"{c} {e.caught}/{e.failures}" for c, e in results.items() if e.failures)
    )
    assert total >= 5
    assert caught / total >= 0.6
    alerts = models.alerts(frame.take(~in_train))
    for alert in alerts:
        assert alert.window_start_s <= alert.window_end_s and 0.5 <= alert.probability <= 1.0
