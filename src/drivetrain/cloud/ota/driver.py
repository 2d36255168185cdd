"""The dispatcher's round step that drives stored rollouts.

Each round of the one dispatcher (``drivetrain.cloud.commands.Dispatcher``, given this as an
``after_round`` step) steps every rollout in progress, each in its own transaction
(:func:`drivetrain.cloud.ota.service.step_rollout`): the vehicles' answers to the rollout's
notices and their version manifests are taken in, and a finished, observed wave is judged by
the health gate. This is the only place answers are taken in, so reading a rollout over the
API changes nothing. A rollout whose step fails is logged and tried again next round; the
others go on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

from drivetrain.cloud.infra import Database
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import service
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.core.errors import DrivetrainError

log = logging.getLogger(__name__)


@dataclass
class RolloutDriver:
    """Steps every rollout in progress (see the module doc); call it with the round's time.

    Args:
        database: the state database.
        layout: the OTA repositories (the Director signs each new wave).
        lake: the telemetry the health gate measures.
        judge_every_s: how often a rollout whose wave is done reads the lake (observing the
            updated cars, judging the wave); the answers are taken in every round.
    """

    database: Database
    layout: OtaLayout
    lake: Lake
    judge_every_s: float = 10.0
    #: The last error per rollout id (cleared when its step succeeds).
    errors: dict[str, str] = field(default_factory=dict)
    _measured: dict[str, float] = field(default_factory=dict)

    def __call__(self, now: datetime) -> int:
        """Step every rollout in progress; returns how many were stepped without error."""
        with self.database.session() as session:
            due = service.rollouts_in_progress(session)
        stepped = 0
        for rollout_id, tenant in due:
            clock = time.monotonic()
            measure = clock - self._measured.get(rollout_id, -math.inf) >= self.judge_every_s
            if measure:
                self._measured[rollout_id] = clock
            try:
                with service.WRITING, self.database.session() as session:
                    service.step_rollout(session, self.layout, self.lake if measure else None,
                                         rollout_id, tenant=tenant, now=now)
            except DrivetrainError as e:
                self.errors[rollout_id] = str(e)
                log.warning("rollout %s: step failed: %s", rollout_id, e)
                continue
            self.errors.pop(rollout_id, None)
            stepped += 1
        return stepped
