"""What runs beside the API in one process: the loops that move decisions to vehicles.

``ControlPlane`` starts, for a state database and the settings' vehicle link:

* with ``audit_checkpoint_dir`` set, the **audit checkpointer**: a signed checkpoint of every
  audit chain's head into that folder every ``audit_checkpoint_interval_s``;
* the commands **dispatcher** (each round also steps the stored OTA rollouts: their vehicles'
  answers and the health gate, ``cloud.ota.RolloutDriver``), the **campaign runner**, the **commerce runner** (renewals,
  dunning, signed entitlements), the **privacy policy watcher** (pushes the minimisation
  policy to the cars when its file changes, ``cloud.privacy.policy_watch``) and, when ``insights_score_every_s`` is above 0, the
  **insights scoring loop** (each tenant's lake scored with its latest maintenance model) —
  always: without a vehicle link
  (``broker_url`` unset) they still run, and deliveries say ``not delivered: no vehicle
  link`` instead of staying silently queued;
* the twins **reconciler** (desired-state deltas) unless ``workers`` is False: without a
  link it still expires items and marks pending desired items ``not delivered: no vehicle
  link``;
* with a link: an **ingest worker** (the
  vehicles' telemetry, events and acknowledgements come back through it; it joins the shared
  subscription group of any other ingest workers) — unless ``workers`` is False — and a
  **bus bridge**, so the change streams of this process see status changes made by other
  processes and theirs see this one's; in the fleet profile also a member of each of the
  platform's **consumer groups** of the backbone (``cloud.streams``), unless ``workers`` is
  False (``drivetrain worker consume`` runs them apart).

In the fleet profile (``settings.profile == "fleet"``) the bus bridge runs on the
**JetStream backbone** (``backbone_url``) instead of the vehicle link: each domain's committed
events land on a durable stream (twins on ``twin-reported``, the others on
``platform-status``), and the ingest worker announces each committed telemetry batch and
security report there (``telemetry-validated``, ``security-events``) for the consumers
downstream. See docs/scale.md.

``drivetrain serve`` runs it in the embedded deployment (one process, no extra workers);
``drivetrain worker dispatch`` runs the dispatcher part alone.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drivetrain.cloud.campaigns import CampaignRunner
from drivetrain.cloud.commands import Dispatcher
from drivetrain.cloud.commerce import CommerceRunner, payment_provider
from drivetrain.cloud.fleet import cloud_signing_key
from drivetrain.cloud.infra import Database
from drivetrain.cloud.infra.audit_checkpoints import Checkpointer
from drivetrain.cloud.infra.backbone import open_backbone_bridge
from drivetrain.cloud.infra.bus import BusBridge, status_bus
from drivetrain.cloud.insights.scheduler import ScoringLoop
from drivetrain.cloud.lake import Lake
from drivetrain.cloud.ota import OtaLayout, RolloutDriver
from drivetrain.cloud.privacy.policy_watch import PolicyWatcher
from drivetrain.cloud.streams import ConsumerGroups
from drivetrain.cloud.twins import Reconciler, hub_for
from drivetrain.core.settings import Settings
from drivetrain.core.transport import Transport, open_transport

if TYPE_CHECKING:
    from drivetrain.cloud.ingest.metrics import IngestMetrics
    from drivetrain.core.transport.jetstream import JetStreamTransport

log = logging.getLogger(__name__)


@dataclass
class ControlPlane:
    """The background loops of one process (see the module docstring).

    Args:
        settings: the process's settings (``broker_url``: the vehicle link, or None).
        database: the state database.
        workers: run the reconciler and an ingest worker on the link too (the embedded
            deployment); False: not in this process.
        dispatching: run the dispatcher, the campaign and commerce runners; False: only the bus bridge
            (an API replica beside ``drivetrain worker dispatch``).
        client_id: the MQTT client id of this process's link.
    """

    settings: Settings
    database: Database
    workers: bool = True
    dispatching: bool = True
    client_id: str = field(default_factory=lambda: f"drivetrain-{socket.gethostname()}"[:64])
    link: Transport | None = None
    dispatcher: Dispatcher | None = None
    campaigns: CampaignRunner | None = None
    commerce: CommerceRunner | None = None
    scoring: ScoringLoop | None = None
    reconciler: Reconciler | None = None
    bridge: BusBridge | None = None
    #: Where the in-process ingest worker's Prometheus instruments go (the API's registry in
    #: ``drivetrain serve``); None: not measured.
    ingest_metrics: IngestMetrics | None = None
    backbone: JetStreamTransport | None = None
    rollout_lake: Lake | None = None
    _stoppers: list[object] = field(default_factory=list)

    @property
    def link_description(self) -> str:
        """What vehicles are reached through, in words."""
        if self.settings.broker_url is None:
            return "none: commands, campaigns and desired state are not delivered (set broker_url)"
        if self.settings.profile == "fleet":
            namespace = self.settings.backbone_namespace
            return (f"MQTT broker {self.settings.broker_url}; backbone: JetStream "
                    f"{self.settings.backbone_url}"
                    + (f" namespace {namespace!r}" if namespace else ""))
        return f"MQTT broker {self.settings.broker_url}"

    def start(self) -> ControlPlane:
        """Start every loop (see the module docstring).

        Raises:
            ConfigurationError: the cloud signing key or the broker URL is unusable.
            TransportError: the broker cannot be reached.
        """
        key = cloud_signing_key(self.settings) if self.dispatching or self.workers else None
        if self.settings.broker_url is not None:
            self.link = open_transport(self.settings.broker_url, client_id=self.client_id,
                                       password=self.settings.broker_password,
                                       session_expiry_s=86_400)
            hub_for(self.database.engine)
            if self.settings.profile == "fleet":
                self.bridge = self._backbone_bridge()
            else:
                self.bridge = BusBridge(status_bus(self.database.engine), self.link).start()
        if self.dispatching and key is not None:
            if self.settings.audit_checkpoint_dir is not None:
                checkpointer = Checkpointer(self.database, key, self.settings.audit_checkpoint_dir,
                                            self.settings.audit_checkpoint_interval_s).start()
                self._stoppers.append(checkpointer.stop)
            self.dispatcher = Dispatcher(self.database, self.link, key,
                                         after_round=[self._rollout_driver()]).start()
            self.campaigns = CampaignRunner(self.database).start()
            self.commerce = CommerceRunner(
                self.database, key, payment_provider(self.settings),
                lease_s=self.settings.entitlement_lease_s).start()
            self._stoppers.append(PolicyWatcher(self.database).start().stop)
            if self.settings.insights_score_every_s > 0:
                self.scoring = ScoringLoop(self.settings, self.database,
                                           self.settings.insights_score_every_s).start()
        if self.workers and key is not None:
            self.reconciler = Reconciler(self.database, self.link, key)
            self.reconciler.start()
            if self.link is not None:
                self._start_ingest(self.link)
            if self.backbone is not None:  # the fleet profile: a member of each group
                self._start_consumers()
        return self

    def _start_consumers(self) -> None:
        assert self.backbone is not None
        groups = ConsumerGroups(self.database, self.backbone).start()
        self._stoppers.append(groups.stop)

    def _rollout_driver(self) -> RolloutDriver:
        """The dispatcher's step that drives stored OTA rollouts (answers, health gate)."""
        self.rollout_lake = Lake.open(self.settings)  # closed once the dispatcher stopped
        return RolloutDriver(self.database, OtaLayout.under(self.settings.data_dir),
                             self.rollout_lake)

    def _backbone_bridge(self) -> BusBridge:
        self.backbone, bridge = open_backbone_bridge(self.settings, self.database,
                                                     self.client_id)
        return bridge

    def _start_ingest(self, link: Transport) -> None:
        from drivetrain.cloud.ingest import IngestPipeline
        from drivetrain.cloud.ingest.announce import Announcer
        from drivetrain.cloud.ingest.sinks import TwinsReportedState
        from drivetrain.cloud.ingest.webhooks import WebhookSender
        from drivetrain.cloud.ingest.worker import IngestWorker
        from drivetrain.cloud.lake import Lake

        lake = Lake.open(self.settings)
        pipeline = IngestPipeline.from_settings(self.settings, self.database, lake,
                                                TwinsReportedState())
        pipeline.webhooks = WebhookSender.from_settings(self.settings)
        if self.backbone is not None:  # the fleet profile
            pipeline.announcer = Announcer(self.backbone, self.client_id)
        worker = IngestWorker(link, pipeline, metrics=self.ingest_metrics).start()
        self._stoppers += [worker.stop, pipeline.webhooks.close, lake.close]

    def stop(self) -> None:
        """Stop every loop, newest first, and close the link; idempotent."""
        for stop in reversed(self._stoppers):
            stop()  # type: ignore[operator]
        self._stoppers = []
        for part in (self.scoring, self.reconciler, self.commerce, self.campaigns,
                     self.dispatcher):
            if part is not None:
                part.stop()
        self.reconciler = self.campaigns = self.dispatcher = self.scoring = None
        if self.rollout_lake is not None:
            self.rollout_lake.close()
            self.rollout_lake = None
        self.commerce = None
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.backbone is not None:
            self.backbone.close()
            self.backbone = None
