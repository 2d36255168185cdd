"""Train the maintenance models from the lake with the simulator's ground truth, and score
the fleet's latest state with a trained model.

Training reads the health signals of a tenant's vehicles from the lake (down-sampled to
``every`` buckets), joins the failures of a fleet run's ``component_events.parquet`` (VINs
mapped to the lake's pseudonyms), holds out a share of the vehicles, trains on the rest and
replays the held-out ones (:func:`~drivetrain.cloud.insights.maintenance.evaluate_alerts`):
those figures are the model card's metrics. Scoring reads the last ``lookback`` of the lake
and returns, for every vehicle and component, the probability of failing within the horizon
and the predicted window — at the vehicle's latest bucket.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from drivetrain.cloud.insights.maintenance import (
    COMPONENTS,
    HEALTH_PATHS,
    MaintenanceDataError,
    MaintenanceModels,
    evaluate_alerts,
    failures_from_events,
    observation_frame,
    split_vehicles,
)
from drivetrain.cloud.insights.registry import ModelCard, code_version
from drivetrain.core.errors import BadInputError

MAINTENANCE_MODEL: Final = "maintenance"
EVENTS_FILE: Final = "component_events.parquet"
MAX_EVENTS_BYTES: Final = 256 * 1024 * 1024
#: Most lake rows one training or scoring run reads (down-sampled buckets x signals).
MAX_LAKE_ROWS: Final = 20_000_000


@dataclass(frozen=True)
class MaintenanceArtifact:
    """What ``model.joblib`` holds: the models and how their input was shaped."""

    models: MaintenanceModels
    every: str  # the lake down-sampling the features were computed on
    lookback_s: float  # how much history scoring reads (the trends' longest window and more)


@dataclass(frozen=True)
class ComponentPrediction:
    """One vehicle's (pseudonym) prediction for one component, at ``observed_at``."""

    vehicle: str
    component: str
    probability: float
    window_start: datetime
    window_end: datetime
    observed_at: datetime


def load_component_events(ground_truth: Path) -> pa.Table:
    """The failures of a fleet run: ``<ground_truth>/component_events.parquet`` (or that file).

    Raises:
        MaintenanceDataError: missing, too large, not Parquet, or lacking a column.
    """
    path = ground_truth / EVENTS_FILE if ground_truth.is_dir() else ground_truth
    try:
        size = path.stat().st_size
        if size > MAX_EVENTS_BYTES:
            raise MaintenanceDataError(f"{path}: {size:,} bytes; at most {MAX_EVENTS_BYTES:,}")
        table = pq.read_table(path)
    except MaintenanceDataError:
        raise
    except (OSError, pa.ArrowException) as e:
        raise MaintenanceDataError(
            f"{path}: not a readable component events file ({e}); expected the "
            f"{EVENTS_FILE} a fleet run writes (drivetrain sim fleet --out DIR)"
        ) from e
    failures_from_events(table)  # checks the columns
    return table


def _span(signals: pa.Table) -> tuple[datetime, datetime]:
    """First and last time of ``signals`` (a timestamp column, or Unix seconds)."""
    lo, hi = (v.as_py() for v in pa.compute.min_max(signals.column("ts")).values())
    if not isinstance(lo, datetime):
        return datetime.fromtimestamp(float(lo), UTC), datetime.fromtimestamp(float(hi), UTC)
    return lo, hi


def train_maintenance(
    signals: pa.Table,
    events: pa.Table,
    vehicle_of: Mapping[str, str],
    *,
    every: str,
    horizon_s: float,
    threshold: float = 0.5,
    held_out_share: float = 0.3,
    seed: int = 0,
    source: str = "lake",
) -> tuple[ModelCard, MaintenanceArtifact]:
    """Train on ``1 - held_out_share`` of the vehicles in ``signals`` (the lake's
    down-sampled table), evaluate on the rest; returns the card (version 0 until stored)
    and the artifact.

    Raises:
        BadInputError: bad horizon, threshold or share; fewer than 4 vehicles.
        MaintenanceDataError: unusable telemetry or ground truth.
        MissingExtraError: LightGBM is not installed.
    """
    if not (horizon_s > 0 and math.isfinite(horizon_s)):
        raise BadInputError(f"horizon_s {horizon_s}; expected a positive number of seconds")
    if not 0 < threshold < 1:
        raise BadInputError(f"threshold {threshold}; expected a probability in (0, 1)")
    if not 0 < held_out_share < 1:
        raise BadInputError(f"held_out_share {held_out_share}; expected a share in (0, 1)")
    frame = observation_frame(signals)
    vehicles = sorted(set(frame.vehicle.tolist()))
    if len(vehicles) < 4:
        raise BadInputError(
            f"{len(vehicles)} vehicle(s) with health signals in the lake; training needs at "
            "least 4 (some to learn from, some held out)"
        )
    failures = failures_from_events(events, vehicle_of)
    known = {v for v, _ in failures} & set(vehicles)
    train, held = split_vehicles(vehicles, held_out_share, seed=seed)
    in_train = np.isin(frame.vehicle, sorted(train))
    models = MaintenanceModels(horizon_s=horizon_s, threshold=threshold)
    models.fit(frame.take(in_train), failures)
    evaluation = evaluate_alerts(models, frame.take(~in_train), failures)
    start, end = _span(signals)
    card = ModelCard(
        name=MAINTENANCE_MODEL, version=0, kind="maintenance.failure-window",
        created_at=datetime.now(UTC), code_version=code_version(),
        features=tuple(models.feature_names),
        training={
            "source": source, "start": start.isoformat(), "end": end.isoformat(),
            "vehicles": len(vehicles), "training_vehicles": len(train),
            "held_out_vehicles": len(held), "rows": len(frame),
            "vehicles_with_failures": len(known),
            "failures": sum(1 for v, _ in failures if v in set(vehicles)),
            "positives": {c: m.positives for c, m in models.models.items()},
        },
        metrics={"held_out": [e.to_dict() for e in evaluation]},
        parameters={"horizon_s": horizon_s, "threshold": threshold, "every": every,
                    "held_out_share": held_out_share, "seed": seed,
                    "components": list(COMPONENTS)},
    )  # fmt: skip
    lookback_s = max(horizon_s, 48 * _every_s(every))
    return card, MaintenanceArtifact(models, every, lookback_s)


def _every_s(every: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
    try:
        return float(every[:-1]) * units[every[-1]]
    except (KeyError, ValueError, IndexError) as e:
        raise BadInputError(f"every {every!r}; expected a number and a unit s/m/h/d, e.g. '5m'") from e


def lake_window(artifact: MaintenanceArtifact, now: datetime) -> tuple[datetime, datetime]:
    """The time range scoring reads: ``lookback_s`` before ``now`` up to ``now``."""
    return now - timedelta(seconds=artifact.lookback_s), now + timedelta(microseconds=1)


def score_latest(artifact: MaintenanceArtifact, signals: pa.Table) -> list[ComponentPrediction]:
    """Every vehicle's prediction per component at its latest bucket in ``signals``.

    Raises:
        MaintenanceDataError: unusable telemetry.
    """
    if signals.num_rows == 0:
        return []
    frame = observation_frame(signals)
    if len(frame) == 0:
        return []
    scored = artifact.models.score_rows(frame)
    last = np.flatnonzero(np.append(frame.vehicle[1:] != frame.vehicle[:-1], True))
    out = []
    for component, (p, lo, hi) in scored.items():
        for row in last:
            t = datetime.fromtimestamp(float(frame.ts_s[row]), UTC)
            out.append(ComponentPrediction(
                str(frame.vehicle[row]), component, float(p[row]),
                t + timedelta(seconds=float(lo[row])), t + timedelta(seconds=float(hi[row])), t,
            ))  # fmt: skip
    return out


def health_paths() -> list[str]:
    """The VSS paths training and scoring read from the lake."""
    return list(HEALTH_PATHS)

