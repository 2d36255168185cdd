"""The scheduled batch job: every ``interval_s`` score each tenant's trained models
(``<data_dir>/models/<tenant>/{maintenance,energy,battery}``) over its lake and store the
predictions and estimates. Run by the control plane (``drivetrain serve``, ``drivetrain worker dispatch``)
when ``insights_score_every_s`` is above 0.

One tenant's failure (an altered model, an unreadable lake) is logged and counted; the
others are still scored. Without the ``insights`` extra the loop logs that once and stops.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from drivetrain.cloud.infra import Database
from drivetrain.cloud.insights._deps import MissingExtraError
from drivetrain.cloud.insights.registry import ModelRegistry
from drivetrain.cloud.insights.service import SCORED_MODELS, ScoreRun, score_tenant
from drivetrain.core.errors import DrivetrainError
from drivetrain.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ScoringLoop:
    """Scores every tenant with a model each ``interval_s`` seconds on a background thread.

    Args:
        settings: where the models and the lake are.
        database: the state database the predictions go to.
        interval_s: seconds between passes (the first pass runs one interval after start).
    """

    settings: Settings
    database: Database
    interval_s: float
    passes: int = 0
    errors: int = 0
    last_runs: list[ScoreRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> list[ScoreRun]:
        """One pass over every tenant's trained models, on the caller's thread.

        Raises:
            MissingExtraError: the insights extra is not installed.
        """
        from drivetrain.cloud.lake import Lake

        runs = []
        work = [(t, m) for t in ModelRegistry.tenants(self.settings.data_dir) for m in SCORED_MODELS
                if ModelRegistry.for_tenant(self.settings.data_dir, t).versions(m)]  # fmt: skip
        if work:
            with Lake.open(self.settings) as lake:
                for tenant, model in work:
                    registry = ModelRegistry.for_tenant(self.settings.data_dir, tenant)
                    try:
                        runs.append(score_tenant(self.database, lake, registry, tenant, model=model,
                                                 trigger="schedule", actor="insights-scheduler", now=now))  # fmt: skip
                    except MissingExtraError:
                        raise
                    except DrivetrainError as e:
                        self.errors += 1
                        log.warning("scoring tenant %s with %s failed: %s", tenant, model, e)
        self.passes += 1
        self.last_runs = runs
        return runs

    def start(self) -> ScoringLoop:
        """Run passes on a background thread until ``stop()`` (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="drivetrain-insights", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except MissingExtraError as e:
                log.warning("scheduled scoring stopped: %s", e)
                return
            except DrivetrainError as e:
                self.errors += 1
                log.warning("scheduled scoring pass failed: %s", e)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current pass; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
