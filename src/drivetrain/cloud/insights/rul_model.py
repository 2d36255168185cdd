"""Remaining-useful-life model for multi-sensor run-to-failure fleets (C-MAPSS-style data).

``RulModel`` = condition-normalised trailing-window features (``rul_features``) + a bag of
LightGBM regressors trained on the piecewise-linear target ``min(RUL, cap)`` (an engine is
"healthy" until roughly ``cap`` cycles before failure; nothing in the sensors says how long
before that). Members differ in seed, row bagging and feature sampling; the prediction is their
mean. The hyper-parameters were chosen by cross-validation over training engines only
(``cross_validate``), never on test labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivetrain.cloud.insights._deps import require
from drivetrain.cloud.insights.cmapss import EngineRuns
from drivetrain.cloud.insights.rul_features import ConditionNormaliser, WindowSpec, window_features

F64 = npt.NDArray[np.float64]

RUL_CAP = 125.0


@dataclass(frozen=True)
class RulConfig:
    """Everything that defines the method (kept in the model card)."""

    windows: WindowSpec = field(
        default_factory=lambda: WindowSpec(means=(5, 15, 30, 60), slopes=(15, 50, 100))
    )
    cap: float = RUL_CAP
    members: int = 5
    rounds: int = 600
    learning_rate: float = 0.02
    num_leaves: int = 31
    min_child_samples: int = 100
    subsample: float = 0.8
    colsample: float = 0.5
    threads: int = 1

    def lightgbm_params(self, seed: int) -> dict[str, object]:
        return {
            "n_estimators": self.rounds,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1,
            "colsample_bytree": self.colsample,
            "reg_lambda": 1.0,
            "random_state": seed,
            "n_jobs": self.threads,
            "verbose": -1,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "windows": self.windows.to_dict(),
            "cap": self.cap,
            "members": self.members,
            "rounds": self.rounds,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "colsample": self.colsample,
        }


@dataclass
class RulModel:
    """A fitted model; ``predict`` gives the RUL (cycles) at every row of some engine runs."""

    config: RulConfig
    normaliser: ConditionNormaliser
    feature_names: list[str]
    members: list[object]
    train_cpu_s: float

    @classmethod
    def fit(
        cls,
        runs: EngineRuns,
        config: RulConfig | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> RulModel:
        """Train on run-to-failure engines (every row; target ``min(RUL, cap)``).

        ``progress(done, total)`` is called after each ensemble member.

        Raises:
            MissingExtraError: LightGBM / scikit-learn are not installed.
        """
        config = config or RulConfig()
        lightgbm = require("lightgbm")
        started = time.process_time()
        normaliser = ConditionNormaliser().fit(runs)
        features, names = window_features(
            normaliser.transform(runs), runs, normaliser.sensor_names(), config.windows
        )
        target = np.minimum(runs.remaining_life(), config.cap)
        members: list[object] = []
        for seed in range(config.members):
            member = lightgbm.LGBMRegressor(**config.lightgbm_params(seed))
            member.fit(features, target)
            members.append(member)
            if progress is not None:
                progress(seed + 1, config.members)
        return cls(config, normaliser, names, members, time.process_time() - started)

    def features(self, runs: EngineRuns) -> F64:
        matrix, _ = window_features(
            self.normaliser.transform(runs), runs, self.normaliser.sensor_names(), self.config.windows
        )
        return matrix

    def predict(self, runs: EngineRuns) -> F64:
        """Predicted RUL in cycles at every row of ``runs`` (clipped to [0, cap])."""
        matrix = self.features(runs)
        preds: F64 = np.mean([m.predict(matrix) for m in self.members], axis=0)  # type: ignore[attr-defined]
        return np.clip(preds, 0.0, self.config.cap)

    def predict_last(self, runs: EngineRuns) -> F64:
        """Predicted RUL at each unit's last row, in unit order."""
        return self.predict(runs)[runs.last_rows()]


def nasa_score(predicted: F64, actual: F64) -> float:
    """The PHM08 asymmetric score: late predictions (d > 0) cost more than early ones."""
    d = predicted - actual
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rmse(predicted: F64, actual: F64) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def cross_validate(
    runs: EngineRuns,
    config: RulConfig,
    *,
    folds: int = 5,
    cuts_per_unit: int = 10,
    min_cycles: int = 31,
    seed: int = 0,
) -> float:
    """RMSE (vs RUL capped at ``config.cap``) over held-out training engines cut at random cycles.

    Each fold trains on the other engines; each held-out engine is scored at up to
    ``cuts_per_unit`` random cycles (at least ``min_cycles`` in, like the shortest test engines).
    The features are causal, so a score at cycle ``c`` equals the score of the engine truncated
    there.
    """
    rng = np.random.default_rng(seed)
    units = rng.permutation(runs.units)
    errors: list[F64] = []
    for fold in range(folds):
        held = units[fold::folds]
        model = RulModel.fit(runs.take_units(np.setdiff1d(units, held)), config)
        held_runs = runs.take_units(held)
        predicted = model.predict(held_runs)
        actual = np.minimum(held_runs.remaining_life(), config.cap)
        rows: list[int] = []
        for unit in held:
            candidates = np.flatnonzero((held_runs.unit == unit) & (held_runs.cycle >= min_cycles))
            take = min(cuts_per_unit, len(candidates))
            rows.extend(int(r) for r in rng.choice(candidates, size=take, replace=False))
        errors.append(predicted[rows] - actual[rows])
    merged = np.concatenate(errors)
    return float(np.sqrt(np.mean(merged**2)))


@dataclass(frozen=True)
class RulBenchResult:
    """The protocol's figures for one subset."""

    subset: str
    rmse: float  # vs true RUL capped at the cap (the published convention)
    rmse_raw: float  # vs the raw true RUL
    score: float  # NASA score vs the capped true RUL
    train_s: float  # CPU seconds to train
    test_units: int
    conditions: int
    predictions: Sequence[float] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "subset": self.subset,
            "rmse": round(self.rmse, 3),
            "rmse_raw": round(self.rmse_raw, 3),
            "score": round(self.score, 1),
            "train_s": round(self.train_s, 1),
            "test_units": self.test_units,
            "conditions": self.conditions,
        }


def evaluate(model: RulModel, subset: str, test: EngineRuns, true_rul: F64) -> RulBenchResult:
    """Score a fitted model at each test unit's last cycle."""
    predicted = model.predict_last(test)
    capped = np.minimum(true_rul, model.config.cap)
    return RulBenchResult(
        subset=subset,
        rmse=rmse(predicted, capped),
        rmse_raw=rmse(predicted, true_rul),
        score=nasa_score(predicted, capped),
        train_s=model.train_cpu_s,
        test_units=len(true_rul),
        conditions=model.normaliser.n_conditions,
        predictions=tuple(float(p) for p in predicted),
    )
