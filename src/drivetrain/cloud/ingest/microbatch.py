"""The state one micro-batch's routing steps share: its transaction, its clock, where accepted
data goes, and the :class:`~drivetrain.cloud.ingest.tally.Tally` of outcomes.

Each routing step (:mod:`.telemetry_route`, :mod:`.event_route`) takes a :class:`MicroBatch`
and records what it decided in ``tally``; a new destination is one more step of this shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest.campaign_outputs import CampaignOutputCache
from drivetrain.cloud.ingest.pending_reports import PendingReports
from drivetrain.cloud.ingest.sinks import LakeWriter, ReportedStateSink
from drivetrain.cloud.ingest.tally import Tally
from drivetrain.cloud.ingest.validation import PathTable
from drivetrain.cloud.ingest.vehicle_catalogs import VehicleCatalogs
from drivetrain.cloud.ingest.webhooks import WebhookPost
from drivetrain.core.privacy_policy import MinimisationPolicy


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch inside its transaction.

    Attributes:
        session: the state-database transaction everything is written in.
        now_ns: the receiver's clock for this micro-batch (ns since the epoch).
        bounds: inclusive ``(earliest, latest)`` sample timestamps accepted.
        paths: the pipeline's path table.
        lake, reported: where accepted samples and latest values go.
        pseudonyms: the lake pseudonym of each vehicle.
        tally: the outcomes recorded so far.
        pending: where latest values wait for the twins (coalesced); None writes them to the
            twins in this transaction.
        catalogs: each vehicle's own catalog, for the paths the standard one does not know
            (custom signals); None judges against the standard catalog only.
        outputs: campaigns' dimensions and destinations (None: neither is acted on).
        policy: the per-region minimisation policy values are coarsened to (None: kept as
            they arrived).
        streams: (topic, payload) messages to publish once the micro-batch is committed.
        webhooks: webhook posts to hand to the sender once the micro-batch is committed.
    """

    session: Session
    now_ns: int
    bounds: tuple[int, int]
    paths: PathTable
    lake: LakeWriter
    reported: ReportedStateSink
    pseudonyms: Callable[[Sequence[Vehicle]], list[str]]
    tally: Tally
    pending: PendingReports | None = None
    catalogs: VehicleCatalogs | None = None
    outputs: CampaignOutputCache | None = None
    policy: MinimisationPolicy | None = None
    streams: list[tuple[str, bytes]] = field(default_factory=list)
    webhooks: list[WebhookPost] = field(default_factory=list)

    @property
    def received_at(self) -> datetime:
        return self.tally.received_at

    @property
    def replay_of(self) -> int | None:
        return self.tally.replay_of


def utc_datetime(ns: int) -> datetime:
    """``ns`` since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, UTC)


def iso_ns(ns: int) -> str:
    """``ns`` as ISO 8601 UTC (or ``"<ns> ns"`` outside the datetime range)."""
    try:
        return utc_datetime(ns).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
