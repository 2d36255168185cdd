"""``EdgeAgent``: the vehicle's agent, driven one tick at a time.

Each ``tick(now_ns, frames=..., samples=...)``:

1. handles the downlink messages that arrived since the last tick (the transport's delivery
   thread only queues them, so all agent state changes on the ticking thread): the guard
   (``downlink.DownlinkGuard``) refuses anything not signed by the cloud for this VIN or
   replayed; the ``DownlinkHandler`` (``handler.py``) applies and acknowledges the rest;
2. decodes the CAN frames (if a ``CanDecoding`` is given) and adds injected VSS samples;
3. runs the collection engine and keeps what it selected — except the samples of upload
   partitions whose condition does not hold yet (``uploads.HeldUploads``), released in the
   tick their partition opens; switches the paid features to those the entitlement gate
   (``entitlements.EntitlementGate``) allows on the vehicle's clock — a lapsed one goes off
   here, offline — through the actuator's ``set_features``;
4. every ``batch_interval_s`` seals what was collected — one telemetry batch per campaign,
   its id in the signed header so the cloud files each sample under its campaign, plus one
   events message — into the store-and-forward buffer (``Outbox``, ``outbox.py``);
5. pumps the uplink (sends in order, removes what the transport confirmed).

Nothing blocks and no thread is started per agent, so a fleet runner can host thousands of
agents in one process, share one transport between them and drive them deterministically;
``run()`` is the loop the CLI uses for one agent.

An agent given its ECU inventory (``EcuInfo`` entries) reports it as a ``vehicle.inventory``
event when it starts and whenever ``set_inventory`` changes it (after a software update), so
the cloud's twin knows which software each ECU runs.

What the agent keeps across restarts (the guard's memory, installed campaigns, the applied
desired-state version, the collection consent, the entitlement tokens and their seq floors,
the decoder manifest in force) is read from the buffer as an ``AgentState`` (``edge.state``).
An agent that decodes CAN restarts with the manifest the cloud
last switched it to, not with the files it was started with, and reports its version again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from drivetrain.core.can import MANIFEST_ECU, DecoderManifest, FrameBatch
from drivetrain.core.entitlement_twin import CHANGED_EVENT, FeatureReport
from drivetrain.core.errors import BadInputError, StorageError
from drivetrain.core.privacy_policy import MinimisationPolicy, RegionPolicy, active_policy
from drivetrain.core.transport import EVENTS, Message, Subscription, Transport, vehicle_topic
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.wire import (
    EcuInfo,
    MessageKind,
    VehicleEvent,
    events_to_dict,
    inventory_event,
)
from drivetrain.core.wire.inventory import check_inventory
from drivetrain.edge.actuator import FeatureSwitch, VehicleActuator
from drivetrain.edge.agent.config import EVENT_PRIORITY, AgentConfig, AgentStats
from drivetrain.edge.agent.handler import (
    DownlinkHandler,
    restore_campaigns,
    restore_manifest,
    restore_policy,
)
from drivetrain.edge.agent.outbox import Outbox
from drivetrain.edge.agent.uploads import HeldUploads, LatestValues
from drivetrain.edge.buffer import Buffer
from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.can_input import CanDecoding
from drivetrain.edge.collection import CollectionEngine
from drivetrain.edge.consent import SYNC_EVENT, CollectionConsent, region_default
from drivetrain.edge.downlink import DOWNLINK_CHANNELS, DownlinkGuard, ReplayState
from drivetrain.edge.entitlements import EntitlementGate
from drivetrain.edge.identity import VehicleIdentity
from drivetrain.edge.ota.notice import OtaUpdater
from drivetrain.edge.samples import Samples
from drivetrain.edge.sources import FrameSource
from drivetrain.edge.uplink import Uplink

if TYPE_CHECKING:
    from drivetrain.edge.ids.image import OnboardIds

log = logging.getLogger("drivetrain.edge")

_NS = 1_000_000_000
#: The VSS signal counting active diagnostic trouble codes.
DTC_COUNT: Final = "Vehicle.Diagnostics.DTCCount"
#: Most DTCs one trigger event carries.
MAX_DTCS: Final = 64


def _read_signals(campaigns: Iterable[Campaign]) -> set[str]:
    """The signals whose latest value the campaigns read: their upload conditions', and the
    DTC count where they report DTCs on trigger."""
    out: set[str] = set()
    for campaign in campaigns:
        for partition in campaign.partitions:
            if partition.when is not None:
                out.update(partition.when.signals)
        if campaign.dtcs_on_trigger:
            out.add(DTC_COUNT)
    return out


class EdgeAgent:
    """The agent of one vehicle (see the module docstring).

    Args:
        identity: VIN, vehicle signing key, cloud key.
        transport: the vehicle link (may be shared by many agents).
        buffer: the store-and-forward buffer (``SqliteBuffer`` in a car); the agent's state
            (``AgentState``: downlink memory, installed campaigns, desired version) is kept in
            it too.
        catalog: the VSS catalog (default: the built-in one).
        actuator: applies desired state and commands; None refuses them (acknowledged as
            rejected).
        can: decodes frames passed to ``tick``; None when samples are injected directly.
        config: tuning.
        clock_ns: the vehicle clock (Unix ns) when ``tick`` is called without ``now_ns``.
        inventory: the vehicle's ECUs (name, hardware id, software version), reported on
            ``start()``; None or empty reports nothing.
        active_dtcs: reads the vehicle's active diagnostic trouble codes (e.g. ``P0A80``), for
            the trigger events of campaigns with ``dtcs_on_trigger``; None: only the latest
            ``Vehicle.Diagnostics.DTCCount`` is reported.
        ota: acts on ``ota.update`` notices (the Uptane primary's update cycle, checked
            against the vehicle's conditions); None acknowledges them as rejected.
        ids: the intrusion detector, run over the frames passed to ``tick`` (its security
            events go up with the agent's events); its model arrives as an OTA image (see
            :class:`~drivetrain.edge.ids.OnboardIds`). None: no detection.
        policy: the minimisation policy (default: :func:`active_policy`); the rules of the
            region the vehicle was provisioned in coarsen values before they are collected.

    Raises:
        StorageError: the buffer cannot be read.
        WireFormatError: ``inventory`` lists more than 200 ECUs or a name twice.
    """

    def __init__(
        self,
        identity: VehicleIdentity,
        transport: Transport,
        buffer: Buffer,
        *,
        catalog: Catalog | None = None,
        actuator: VehicleActuator | None = None,
        can: CanDecoding | None = None,
        config: AgentConfig | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        inventory: Sequence[EcuInfo] | None = None,
        active_dtcs: Callable[[], Sequence[str]] | None = None,
        ota: OtaUpdater | None = None,
        ids: OnboardIds | None = None,
        policy: MinimisationPolicy | None = None,
    ) -> None:
        self._inventory = check_inventory(inventory or ())
        self.identity = identity
        self.vin = identity.vin
        self.transport = transport
        self.buffer = buffer
        self.catalog = catalog or builtin_catalog()
        self.actuator = actuator
        self.can = can
        self.ids = ids
        self.config = config or AgentConfig()
        self._clock_ns = clock_ns
        self.uplink = Uplink(
            buffer,
            transport,
            max_in_flight=self.config.max_in_flight,
            resend_after_s=self.config.resend_after_s,
            backoff_initial_s=self.config.backoff_initial_s,
            backoff_max_s=self.config.backoff_max_s,
        )
        state = buffer.load_state()
        # the rules of the vehicle's region: the cloud's last push, else the file's
        minimisation = restore_policy(state.policy, identity.region, self.vin) or (
            policy or active_policy()).for_region(identity.region)
        self.guard = DownlinkGuard(
            self.vin,
            identity.cloud_key,
            state=ReplayState.from_record(state.downlink),
            freshness_s=self.config.freshness_s,
            max_skew_s=self.config.max_skew_s,
        )
        # The manifest first: the custom signals it carries are what campaigns may name.
        base_catalog = self.catalog
        restored = restore_manifest(state.manifest, base_catalog, self.vin) if can else None
        if restored is not None:
            self.can = restored[1]
            self.catalog = restored[2]
            self._inventory = self._with_manifest(restored[0])
        self.engine = CollectionEngine()
        restore_campaigns(self.engine, state.campaigns, self.catalog, self.vin)
        self.outbox = Outbox(identity, buffer)
        self.entitlements = EntitlementGate(self.vin, identity.cloud_key, state.entitlements)
        #: The paid features switched on now (decided each tick from the entitlements).
        self.features: frozenset[str] = frozenset()
        #: The features as last reported to the twin (a restarted agent reports what it holds).
        self._reported_features: list[FeatureReport] = []
        self.downlink = DownlinkHandler(
            self.guard,
            self.engine,
            self.catalog,
            actuator,
            self.outbox,
            desired_version=state.desired.version,
            refusal_report_interval_s=self.config.refusal_report_interval_s,
            on_manifest=self._switch_decoding if can is not None else None,
            # before its first consent the car collects its region's default, not everything
            consent=state.consent if state.consent.version >= 0
            else region_default(minimisation.default_off),
            entitlements=self.entitlements,
            manifest_version=0 if restored is None else restored[0].version,
            base_catalog=base_catalog,
            ota=ota,
            region=identity.region,
            region_policy=minimisation,
            policy_record=state.policy if state.policy.region == identity.region else None,
        )
        self._active_dtcs = active_dtcs
        #: The latest value of every signal seen (upload conditions and DTC counts read it).
        self.latest = LatestValues()
        #: Samples of upload partitions waiting for their condition.
        self.held = HeldUploads()
        #: Whether the link is unmetered now (``link: unmetered`` partitions wait for it);
        #: the vehicle's connectivity manager sets it.
        self.unmetered_link = self.config.unmetered_link
        self._inbox: deque[Message] = deque()
        #: Withdrawals the driver made on the car's screen, applied on the ticking thread.
        self._withdrawals: deque[tuple[str, ...]] = deque()
        self._subscriptions: list[Subscription] = []
        # Collected samples by (priority, campaign id) until the next flush.
        self._pending: dict[tuple[int, str], list[Samples]] = {}
        self._pending_rows = 0
        self._consent_seen = self.downlink.consent
        self._last_flush_ns: int | None = None
        self._ticks = 0
        self._samples_in = 0
        self._samples_collected = 0
        #: Samples dropped on the vehicle because their category is not consented, by category.
        self.not_consented_by_category: Counter[str] = Counter()
        self._samples_coarsened = 0
        self._fired = 0
        #: Inventory events sealed so far (on start and on each change).
        self.inventory_reports = 0
        #: A ``privacy.sync`` report is due (at the first tick after a start or a reconnect).
        self._sync_due = False
        #: The transport's connection count at the last tick (a rise from >= 1: reconnected).
        self._connections_seen = 0

    @property
    def desired_version(self) -> int:
        """The newest desired-state version applied (-1: none)."""
        return self.downlink.desired_version

    @property
    def stale_desired(self) -> int:
        """Desired-state deltas ignored as not newer than the version in force."""
        return self.downlink.stale_desired

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to this vehicle's downlink topics and report the ECU inventory (if the
        agent has one) into the buffer; idempotent until ``stop()``."""
        if self._subscriptions:
            return
        if self._inventory:
            self._report_inventory(self._clock_ns())
        self._sync_due = True
        for channel in DOWNLINK_CHANNELS.values():
            # Acknowledged to the broker only once handled and its outcome is on disk (tick):
            # a message received just before a crash is delivered again in the next session.
            self._subscriptions.append(
                self.transport.subscribe(
                    vehicle_topic(self.vin, channel), self.receive, qos=1, manual_ack=True
                )
            )

    def receive(self, message: Message) -> None:
        """Queue a downlink message for the next tick (thread-safe; decides nothing).

        ``start()`` subscribes this to the vehicle's three downlink topics. A runner hosting
        many agents on one transport may instead subscribe once with a wildcard filter
        (``vehicle_filter(STATE_DESIRED)``, ...) and hand each message to its VIN's agent.
        """
        self._inbox.append(message)

    @property
    def inventory(self) -> tuple[EcuInfo, ...]:
        """The ECU inventory this agent reports, sorted by ECU name."""
        return self._inventory

    def set_inventory(self, ecus: Sequence[EcuInfo], now_ns: int | None = None) -> bool:
        """Replace the ECU inventory (after a software update, say) and, if it changed,
        report it at once (``now_ns``: the vehicle clock, Unix ns; default ``clock_ns()``).
        Returns whether it changed.

        Raises:
            WireFormatError: more than 200 ECUs or a name listed twice (nothing changes).
        """
        new = check_inventory(ecus)
        if new == self._inventory:
            return False
        self._inventory = new
        self._report_inventory(self._clock_ns() if now_ns is None else now_ns)
        return True

    def _switch_decoding(
        self, manifest: DecoderManifest, decoding: CanDecoding, now_ns: int
    ) -> None:
        """Decode with ``decoding`` from the next tick on, and report the manifest in force in
        the ECU inventory (an entry ``DecoderManifest``: model and version), so the twin shows
        it and fleet queries can select by it."""
        self.can = decoding
        self.set_inventory(self._with_manifest(manifest), now_ns)

    def _with_manifest(self, manifest: DecoderManifest) -> tuple[EcuInfo, ...]:
        entry = EcuInfo(MANIFEST_ECU, manifest.model, str(manifest.version))
        return check_inventory([e for e in self._inventory if e.name != MANIFEST_ECU] + [entry])

    def _report_inventory(self, now_ns: int) -> None:
        """Seal a ``vehicle.inventory`` event into the buffer now; if the buffer fails, keep
        it with the pending events (sealed at the next flush)."""
        event = inventory_event(self._inventory, now_ns)
        try:
            self.outbox.seal_json(
                MessageKind.EVENTS, EVENTS, events_to_dict([event]), EVENT_PRIORITY, now_ns
            )
        except StorageError as e:
            log.warning("%s: inventory kept for the next flush: %s", self.vin, e)
            self.outbox.events.append(event)
            return
        self.outbox.events_sent += 1
        self.inventory_reports += 1

    def _report_privacy_held(self, now_ns: int) -> None:
        """Report the consent and policy versions held (``SYNC_EVENT``), once per start and
        per reconnection of the transport, after the messages waiting for the car were
        applied: the cloud re-sends what the car missed (a delivery that ended while it was
        away, another command in its slot)."""
        self._sync_due = False
        policy = self.downlink.policy_record
        self.outbox.events.append(VehicleEvent(SYNC_EVENT, now_ns, "info", {
            "consent_version": self.downlink.consent.version,
            "policy_region": policy.region or self.identity.region,
            "policy_version": policy.version,
        }))  # fmt: skip

    def stop(self) -> None:
        """Unsubscribe; the buffer and transport stay open (their owner closes them)."""
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions = []

    # --- the tick ------------------------------------------------------------------------------

    def tick(
        self,
        now_ns: int | None = None,
        *,
        frames: FrameBatch | None = None,
        samples: Samples | None = None,
        frames_offset_ns: int = 0,
    ) -> int:
        """Do one round of work (see the module docstring); returns samples collected.

        Args:
            now_ns: the vehicle clock, Unix ns (default: ``clock_ns()``).
            frames: CAN frames received since the last tick (needs ``can``).
            samples: VSS samples to add directly (a simulator without a CAN path).
            frames_offset_ns: added to frame timestamps (seconds) to make Unix ns.

        Raises:
            StorageError: the buffer failed (what was collected in this tick is kept in
                memory and sealed on a later tick).
        """
        now_ns = self._clock_ns() if now_ns is None else now_ns
        self._ticks += 1
        while self._inbox:
            message = self._inbox[0]
            self.downlink.handle(message.topic, message.payload, now_ns)  # StorageError: kept
            self._inbox.popleft()
            message.ack()
        while self._withdrawals:
            try:
                self.withdraw_consent(self._withdrawals[0], now_ns)  # StorageError: kept
            except BadInputError as e:  # already off, or not a category: nothing to stop
                log.warning("%s: withdrawal in the car not applied: %s", self.vin, e)
            self._withdrawals.popleft()
        connections = self.transport.connections
        if connections > self._connections_seen >= 1:  # the session to the broker came back
            self._sync_due = True
        self._connections_seen = connections
        if self._sync_due:
            self._report_privacy_held(now_ns)
        parts = []
        if frames is not None and len(frames):
            if self.can is None:
                raise ValueError("frames were given but the agent has no CAN decoding")
            parts.append(self.can.samples(frames, frames_offset_ns))
            if self.ids is not None:
                self.outbox.events.extend(self.ids.scan(frames,
                                                        epoch_offset_s=frames_offset_ns / 1e9))
        if samples is not None:
            parts.append(samples)
        incoming = Samples.concat(parts)
        self._samples_in += len(incoming)
        incoming = self._consented(incoming)
        incoming = self._minimised(incoming)
        installed = {c.id: c for c in self.engine.campaigns}
        self.latest.update(incoming, _read_signals(installed.values()))
        result = self.engine.process(incoming, now_ns)
        for collected in result.collected:
            campaign = installed.get(collected.campaign_id)
            now_samples = collected.samples if campaign is None else self.held.split(
                campaign, collected.priority, collected.samples)
            self._keep(collected.priority, collected.campaign_id, now_samples)
        for priority, campaign_id, released in self.held.release(
            installed, self.latest, self.unmetered_link
        ):
            self._keep(priority, campaign_id, released)
        self._samples_collected += result.sample_count
        for fired in result.fired:
            self._fired += 1
            data: dict[str, object] = {"campaign": fired.campaign_id, "trigger": fired.trigger}
            campaign = installed.get(fired.campaign_id)
            if campaign is not None and campaign.dtcs_on_trigger:
                data.update(self._dtcs())
            self.outbox.events.append(VehicleEvent("campaign.triggered", fired.ts_ns, "info",
                                                   data))
        for campaign_id in result.expired:
            self.outbox.events.append(
                VehicleEvent("campaign.expired", now_ns, "info", {"campaign": campaign_id})
            )
            self.downlink.save_campaigns()
        self._switch_features(now_ns)
        self.downlink.report_refusals(now_ns)
        if self._last_flush_ns is None:
            self._last_flush_ns = now_ns
        due = now_ns - self._last_flush_ns >= self.config.batch_interval_s * _NS
        if due or self._pending_rows >= self.config.max_batch_samples:
            self.flush(now_ns)
        self.uplink.pump(now_ns / _NS)
        return result.sample_count

    def _consented(self, incoming: Samples) -> Samples:
        """Drop what consent does not cover, before it is collected; under a newer consent,
        also what was collected and is not sealed yet."""
        consent = self.downlink.consent
        if consent is not self._consent_seen:  # a newer consent, or a new region default
            self._consent_seen = consent
            for key, parts in self._pending.items():
                filtered = [consent.filter_by_category(p) for p in parts]
                self._pending[key] = [k for k, _ in filtered]
                for _, dropped in filtered:
                    self._pending_rows -= sum(dropped.values())
                    self.not_consented_by_category.update(dropped)
        kept, dropped = consent.filter_by_category(incoming)
        self.not_consented_by_category.update(dropped)
        return kept

    def request_withdrawal(self, categories: Iterable[str]) -> None:
        """Thread-safe :meth:`withdraw_consent` for the car's screen: applied at the start of
        the next tick, before its samples (an unknown category or one already off is logged)."""
        self._withdrawals.append(tuple(categories))

    def withdraw_consent(
        self, categories: Iterable[str], now_ns: int | None = None
    ) -> CollectionConsent:
        """The driver withdraws ``categories`` on the car's screen: nothing of them is
        collected from now on (what was collected and not sealed is dropped at once), and the
        cloud is told by a signed ``privacy.consent.withdrawn`` event, sealed now. Call it on
        the ticking thread (:meth:`request_withdrawal` from any other).

        Raises:
            BadInputError: an unknown category, or one not collected now (nothing changes).
            StorageError: the buffer failed (nothing changes).
        """
        now_ns = self._clock_ns() if now_ns is None else now_ns
        new = self.downlink.withdraw(sorted(set(categories)), now_ns)
        self._consented(Samples.empty())  # drop the pending samples of those categories
        return new

    @property
    def minimisation(self) -> RegionPolicy:
        """The minimisation rules of the vehicle's region in force (the cloud may push new)."""
        return self.downlink.region_policy

    def _minimised(self, incoming: Samples) -> Samples:
        """``incoming`` at the precision the vehicle's region allows (before it is collected,
        buffered or sent, and before conditions read it)."""
        value, changed = self.minimisation.coarsen(incoming.paths, incoming.path_index,
                                                   incoming.value)
        if not changed:
            return incoming
        self._samples_coarsened += changed
        return replace(incoming, value=value)

    @property
    def samples_coarsened(self) -> int:
        """Values the region's minimisation policy coarsened on the vehicle."""
        return self._samples_coarsened

    @property
    def samples_not_consented(self) -> int:
        """Samples dropped on the vehicle because their privacy category is not consented."""
        return sum(self.not_consented_by_category.values())

    def _switch_features(self, now_ns: int) -> None:
        """Enforce the entitlements on the vehicle's clock: a feature whose token lapsed
        (``exp`` plus grace) goes off here even with no link to the cloud. Every change — a
        feature on or off, into its grace period, a newer token — is reported to the twin as
        an ``entitlements.changed`` event: the features switched on and off, and each
        feature's token in force, seq, expiry and state (``core.entitlement_twin``)."""
        enabled = self.entitlements.enabled(now_ns)
        reports = self.entitlements.twin_reports(now_ns)
        if enabled != self.features and isinstance(self.actuator, FeatureSwitch):
            self.actuator.set_features(enabled)
        if enabled == self.features and reports == self._reported_features:
            return
        before, self.features, self._reported_features = self.features, enabled, reports
        self.outbox.events.append(VehicleEvent(
            CHANGED_EVENT, now_ns, "info",
            {"enabled": sorted(enabled), "on": sorted(enabled - before),
             "off": sorted(before - enabled), "features": [r.to_dict() for r in reports]},
        ))  # fmt: skip

    def _keep(self, priority: int, campaign_id: str, samples: Samples) -> None:
        """Queue ``samples`` for the next flush under their campaign."""
        if len(samples):
            self._pending.setdefault((priority, campaign_id), []).append(samples)
            self._pending_rows += len(samples)

    def _dtcs(self) -> dict[str, object]:
        """The active DTCs for a trigger event: the codes (when the vehicle can read them) and
        the latest DTC count."""
        out: dict[str, object] = {}
        if self._active_dtcs is not None:
            out["dtcs"] = [str(code) for code in self._active_dtcs()][:MAX_DTCS]
        count = self.latest.get(DTC_COUNT)
        out["dtc_count"] = None if count is None else int(count)
        return out

    def flush(self, now_ns: int | None = None) -> None:
        """Seal everything collected so far into the buffer now (batches and events).

        Raises:
            StorageError: the buffer failed (the samples stay pending).
        """
        now_ns = self._clock_ns() if now_ns is None else now_ns
        self._last_flush_ns = now_ns
        for key in sorted(self._pending, key=lambda k: (-k[0], k[1])):
            priority, campaign_id = key
            batch = Samples.concat(self._pending[key])
            if len(batch):
                self.outbox.seal_telemetry(batch, priority, now_ns, campaign=campaign_id)
            del self._pending[key]
            self._pending_rows -= len(batch)
        self.outbox.seal_events(now_ns)

    # --- the loop of one agent (the CLI) --------------------------------------------------------

    def run(
        self,
        source: FrameSource | None,
        *,
        tick_s: float = 0.1,
        stop: threading.Event | None = None,
        duration_s: float | None = None,
        on_status: Callable[[AgentStats], None] | None = None,
        status_interval_s: float = 0.5,
        drain_timeout_s: float = 10.0,
    ) -> AgentStats:
        """Tick every ``tick_s`` seconds with the frames of ``source`` until ``stop`` is set,
        ``duration_s`` has passed, or the source is finished; then seal what is pending and
        give the uplink up to ``drain_timeout_s`` to send the buffer.

        ``on_status`` is called with fresh stats about every ``status_interval_s``.

        Raises:
            StorageError, TransportError: the buffer or the CAN bus failed.
        """
        stop = stop or threading.Event()
        self.start()
        started = time.monotonic()
        next_status = started
        while not stop.is_set():
            frames = source.read() if source is not None else None
            self.tick(frames=frames)
            now = time.monotonic()
            if on_status is not None and now >= next_status:
                on_status(self.stats())
                next_status = now + status_interval_s
            if duration_s is not None and now - started >= duration_s:
                break
            if source is not None and source.finished:
                break
            stop.wait(max(0.0, tick_s - (time.monotonic() - now)))
        self.flush()
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            self.uplink.pump(time.time())
            if self.uplink.idle and self.buffer.stats().messages == 0:
                break
            time.sleep(0.02)
        stats = self.stats()
        if on_status is not None:
            on_status(stats)
        return stats

    # --- observing -----------------------------------------------------------------------------

    def install_local(self, campaigns: Iterable[Campaign]) -> None:
        """Install campaigns from a trusted local source (bench tests, simulator set-up)."""
        for campaign in campaigns:
            self.engine.install(campaign)
        self.downlink.save_campaigns()

    def stats(self) -> AgentStats:
        buffer = self.buffer.stats()
        return AgentStats(
            ticks=self._ticks,
            samples_in=self._samples_in,
            samples_collected=self._samples_collected,
            batches_sealed=self.outbox.batches,
            bytes_sealed=self.outbox.bytes,
            events_sent=self.outbox.events_sent,
            triggers_fired=self._fired,
            evicted_messages=buffer.evicted_messages,
            buffered_messages=buffer.messages,
            buffered_bytes=buffer.bytes,
            downlink_accepted=dict(self.guard.accepted),
            downlink_refused=dict(self.guard.refused),
            acks_sent=dict(self.downlink.acks),
            uplink=self.uplink.stats(),
            campaigns=tuple(c.id for c in self.engine.campaigns),
        )
