"""``EdgeAgent``: the vehicle's agent, driven one tick at a time.

Each ``tick(now_ns, frames=..., samples=...)``:

1. handles the downlink messages that arrived since the last tick (the transport's delivery
   thread only queues them, so all agent state changes on the ticking thread): the guard
   (``downlink.DownlinkGuard``) refuses anything not signed by the cloud for this VIN or
   replayed; accepted desired-state deltas go to the ``VehicleActuator``, campaigns to the
   collection engine, commands to the actuator; each outcome is acknowledged with a signed
   ``Ack`` on ``dt/v1/{vin}/ack``, and applied desired values are reported in telemetry at once;
2. decodes the CAN frames (if a ``CanDecoding`` is given) and adds injected VSS samples;
3. runs the collection engine and keeps what it selected;
4. every ``batch_interval_s`` seals what was collected — one telemetry batch per campaign
   priority, plus one events message — and appends it to the store-and-forward buffer;
5. pumps the uplink (sends in order, removes what the transport confirmed).

Nothing blocks and no thread is started per agent, so a fleet runner can host thousands of
agents in one process, share one transport between them and drive them deterministically;
``run()`` is the loop the CLI uses for one agent.

An agent given its ECU inventory (``EcuInfo`` entries) reports it as a ``vehicle.inventory``
event when it starts and whenever ``set_inventory`` changes it (after a software update), so
the cloud's twin knows which software each ECU runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from drivetrain.core.can.frames import FrameBatch
from drivetrain.core.errors import (
    BadInputError,
    CampaignFormatError,
    ConflictError,
    StorageError,
    WireFormatError,
)
from drivetrain.core.transport import (
    ACK,
    EVENTS,
    TELEMETRY,
    Message,
    Subscription,
    Transport,
    vehicle_topic,
)
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.wire import (
    Ack,
    Command,
    DesiredStateDelta,
    EcuInfo,
    MessageKind,
    VehicleEvent,
    events_to_dict,
    inventory_event,
    new_message_id,
    seal_json,
    seal_telemetry,
)
from drivetrain.core.wire.inventory import check_inventory
from drivetrain.edge.actuator import VehicleActuator
from drivetrain.edge.buffer import AppendResult, Buffer, OutgoingMessage
from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.can_input import CanDecoding
from drivetrain.edge.collection import CollectionEngine
from drivetrain.edge.downlink import (
    BENIGN_REASONS,
    DEFAULT_FRESHNESS_S,
    DOWNLINK_CHANNELS,
    Accepted,
    DownlinkGuard,
    Refused,
    ReplayState,
)
from drivetrain.edge.identity import VehicleIdentity
from drivetrain.edge.samples import Samples
from drivetrain.edge.sources import FrameSource
from drivetrain.edge.uplink import Uplink, UplinkStats

log = logging.getLogger("drivetrain.edge")

_NS: Final = 1_000_000_000
#: Priorities in the buffer (0-9; lower is evicted first). Telemetry takes its campaign's.
ACK_PRIORITY: Final = 9
REPORT_PRIORITY: Final = 8
EVENT_PRIORITY: Final = 8
#: Keys of the agent state kept in the buffer's database.
_STATE_DOWNLINK: Final = "downlink"
_STATE_CAMPAIGNS: Final = "campaigns"
_STATE_VERSIONS: Final = "campaign_versions"
_STATE_DESIRED: Final = "desired_version"


@dataclass(frozen=True)
class AgentConfig:
    """Tuning of one agent.

    Attributes:
        batch_interval_s: how often collected samples are sealed into a batch, seconds.
        max_batch_samples: a batch is sealed early once this many samples wait.
        refusal_report_interval_s: at most one ``edge.downlink.refused`` event per this many
            seconds (with the counts since the last one), so a flood of forged messages does
            not flood the uplink.
        freshness_s: per downlink kind, the oldest message accepted (seconds).
        max_skew_s: how far a downlink message may be dated ahead of the vehicle clock.
        max_in_flight, resend_after_s, backoff_initial_s, backoff_max_s: see ``Uplink``.
    """

    batch_interval_s: float = 1.0
    max_batch_samples: int = 20_000
    refusal_report_interval_s: float = 60.0
    freshness_s: Mapping[MessageKind, float] = field(
        default_factory=lambda: dict(DEFAULT_FRESHNESS_S)
    )
    max_skew_s: float = 60.0
    max_in_flight: int = 64
    resend_after_s: float = 120.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True)
class AgentStats:
    """What one agent has done since it started (a snapshot)."""

    ticks: int
    samples_in: int
    samples_collected: int
    batches_sealed: int
    bytes_sealed: int
    events_sent: int
    triggers_fired: int
    evicted_messages: int
    buffered_messages: int
    buffered_bytes: int
    downlink_accepted: Mapping[str, int]
    downlink_refused: Mapping[str, int]
    acks_sent: Mapping[str, int]
    uplink: UplinkStats
    campaigns: tuple[str, ...]


class EdgeAgent:
    """The agent of one vehicle (see the module docstring).

    Args:
        identity: VIN, vehicle signing key, cloud key.
        transport: the vehicle link (may be shared by many agents).
        buffer: the store-and-forward buffer (``SqliteBuffer`` in a car); agent state
            (accepted downlink ids, installed campaigns) is kept in it too.
        catalog: the VSS catalog (default: the built-in one).
        actuator: applies desired state and commands; None refuses them (acknowledged as
            rejected).
        can: decodes frames passed to ``tick``; None when samples are injected directly.
        config: tuning.
        clock_ns: the vehicle clock (Unix ns) when ``tick`` is called without ``now_ns``.
        inventory: the vehicle's ECUs (name, hardware id, software version), reported on
            ``start()``; None or empty reports nothing.

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
    ) -> None:
        self._inventory = check_inventory(inventory or ())
        self.identity = identity
        self.vin = identity.vin
        self.transport = transport
        self.buffer = buffer
        self.catalog = catalog or builtin_catalog()
        self.actuator = actuator
        self.can = can
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
        self.guard = DownlinkGuard(
            self.vin,
            identity.cloud_key,
            state=ReplayState.from_json(buffer.get_state(_STATE_DOWNLINK)),
            freshness_s=self.config.freshness_s,
            max_skew_s=self.config.max_skew_s,
        )
        self.engine = CollectionEngine()
        self._restore_campaigns()
        desired = buffer.get_state(_STATE_DESIRED)
        self.desired_version = int(desired) if desired and desired.isdigit() else -1
        self._inbox: deque[Message] = deque()
        self._subscriptions: list[Subscription] = []
        self._pending: dict[int, list[Samples]] = {}
        self._pending_rows = 0
        self._events: list[VehicleEvent] = []
        self._last_flush_ns: int | None = None
        self._refusals_unreported: Counter[str] = Counter()
        self._last_refusal_report_ns = 0
        self._ticks = 0
        self._samples_in = 0
        self._samples_collected = 0
        self._batches = 0
        self._bytes = 0
        self._events_sent = 0
        self._fired = 0
        self._evicted = 0
        self._acks: Counter[str] = Counter()
        self.stale_desired = 0
        #: Inventory events sealed so far (on start and on each change).
        self.inventory_reports = 0

    def _restore_campaigns(self) -> None:
        versions = json.loads(self.buffer.get_state(_STATE_VERSIONS) or "{}")
        for data in json.loads(self.buffer.get_state(_STATE_CAMPAIGNS) or "[]"):
            try:
                self.engine.install(Campaign.from_dict(data, self.catalog))
            except (CampaignFormatError, ConflictError) as e:  # a catalog change can do this
                log.warning("%s: stored campaign not reinstalled: %s", self.vin, e)
        for campaign_id, version in versions.items():
            self.engine.remember_version(campaign_id, int(version))

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to this vehicle's downlink topics and report the ECU inventory (if the
        agent has one) into the buffer; idempotent until ``stop()``."""
        if self._subscriptions:
            return
        if self._inventory:
            self._report_inventory(self._clock_ns())
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

    def _report_inventory(self, now_ns: int) -> None:
        """Seal a ``vehicle.inventory`` event into the buffer now; if the buffer fails, keep
        it with the pending events (sealed at the next flush)."""
        event = inventory_event(self._inventory, now_ns)
        try:
            self._append_json(
                MessageKind.EVENTS, EVENTS, events_to_dict([event]), EVENT_PRIORITY, now_ns
            )
        except StorageError as e:
            log.warning("%s: inventory kept for the next flush: %s", self.vin, e)
            self._events.append(event)
            return
        self._events_sent += 1
        self.inventory_reports += 1

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
            self._handle_downlink(message.topic, message.payload, now_ns)  # StorageError: kept
            self._inbox.popleft()
            message.ack()
        parts = []
        if frames is not None and len(frames):
            if self.can is None:
                raise ValueError("frames were given but the agent has no CAN decoding")
            parts.append(self.can.samples(frames, frames_offset_ns))
        if samples is not None:
            parts.append(samples)
        incoming = Samples.concat(parts)
        self._samples_in += len(incoming)
        result = self.engine.process(incoming, now_ns)
        for collected in result.collected:
            self._pending.setdefault(collected.priority, []).append(collected.samples)
            self._pending_rows += len(collected.samples)
        self._samples_collected += result.sample_count
        for fired in result.fired:
            self._fired += 1
            self._events.append(VehicleEvent(
                "campaign.triggered", fired.ts_ns, "info",
                {"campaign": fired.campaign_id, "trigger": fired.trigger},
            ))  # fmt: skip
        for campaign_id in result.expired:
            self._events.append(
                VehicleEvent("campaign.expired", now_ns, "info", {"campaign": campaign_id})
            )
            self._save_campaigns()
        self._report_refusals(now_ns)
        if self._last_flush_ns is None:
            self._last_flush_ns = now_ns
        due = now_ns - self._last_flush_ns >= self.config.batch_interval_s * _NS
        if due or self._pending_rows >= self.config.max_batch_samples:
            self.flush(now_ns)
        self.uplink.pump(now_ns / _NS)
        return result.sample_count

    def flush(self, now_ns: int | None = None) -> None:
        """Seal everything collected so far into the buffer now (batches and events).

        Raises:
            StorageError: the buffer failed (the samples stay pending).
        """
        now_ns = self._clock_ns() if now_ns is None else now_ns
        self._last_flush_ns = now_ns
        for priority in sorted(self._pending, reverse=True):
            batch = Samples.concat(self._pending[priority])
            if len(batch):
                self._seal_telemetry(batch, priority, now_ns)
            del self._pending[priority]
            self._pending_rows -= len(batch)
        if self._events:
            events = list(self._events)
            self._append_json(
                MessageKind.EVENTS, EVENTS, events_to_dict(events), EVENT_PRIORITY, now_ns
            )
            del self._events[: len(events)]  # an eviction event raised by this append stays
            self._events_sent += len(events)

    def _seal_telemetry(self, samples: Samples, priority: int, now_ns: int) -> AppendResult:
        seq = self.buffer.next_seq(MessageKind.TELEMETRY)
        message_id = new_message_id()
        payload = seal_telemetry(
            self.vin,
            samples.to_table(),
            key=self.identity.signing_key,
            seq=seq,
            message_id=message_id,
            sent_ns=now_ns,
        )
        result = self._append(OutgoingMessage(
            message_id, MessageKind.TELEMETRY, seq, vehicle_topic(self.vin, TELEMETRY), priority,
            now_ns, payload,
        ))  # fmt: skip
        self._batches += 1
        self._bytes += len(payload)
        return result

    def _append_json(
        self,
        kind: MessageKind,
        channel: str,
        body: Mapping[str, Any],
        priority: int,
        now_ns: int,
        state: Mapping[str, str] | None = None,
    ) -> AppendResult:
        seq = self.buffer.next_seq(kind)
        message_id = new_message_id()
        payload = seal_json(
            kind,
            self.vin,
            body,
            key=self.identity.signing_key,
            seq=seq,
            message_id=message_id,
            sent_ns=now_ns,
        )
        return self._append(
            OutgoingMessage(
                message_id, kind, seq, vehicle_topic(self.vin, channel), priority, now_ns, payload
            ),
            state,
        )

    def _append(
        self, message: OutgoingMessage, state: Mapping[str, str] | None = None
    ) -> AppendResult:
        result = self.buffer.append(message, state=state)
        if result.evicted:
            self._evicted += len(result.evicted)
            by_kind = Counter(e.kind.name.lower() for e in result.evicted)
            self._events.append(VehicleEvent(
                "edge.buffer.evicted", message.created_ns, "medium",
                {"messages": len(result.evicted), "bytes": sum(e.size for e in result.evicted),
                 "by_kind": dict(by_kind),
                 "lowest_priority": min(e.priority for e in result.evicted)},
            ))  # fmt: skip
            log.warning("%s: buffer full, evicted %d messages", self.vin, len(result.evicted))
        return result

    # --- downlink ------------------------------------------------------------------------------

    def _handle_downlink(self, topic: str, payload: bytes, now_ns: int) -> None:
        outcome = self.guard.check(topic, payload, now_ns)
        if isinstance(outcome, Refused):
            log.info("%s: downlink refused (%s): %s", self.vin, outcome.reason, outcome.detail)
            if outcome.reason not in BENIGN_REASONS:
                self._refusals_unreported[outcome.reason] += 1
            return
        handler = {
            MessageKind.DESIRED_STATE: self._apply_desired,
            MessageKind.CAMPAIGN: self._install_campaign,
            MessageKind.COMMAND: self._run_command,
        }[outcome.kind]
        handler(outcome, now_ns)

    def _acknowledge(self, ack: Ack, now_ns: int, state: Mapping[str, str] | None = None) -> None:
        full_state = {_STATE_DOWNLINK: self.guard.state.to_json(), **(state or {})}
        self._append_json(MessageKind.ACK, ACK, ack.to_dict(), ACK_PRIORITY, now_ns, full_state)
        self._acks[f"{ack.ref_kind}.{ack.status}"] += 1

    def _apply_desired(self, accepted: Accepted, now_ns: int) -> None:
        ref = accepted.envelope.message_id
        try:
            delta = DesiredStateDelta.from_dict(accepted.body)
        except WireFormatError as e:
            self._acknowledge(Ack(ref, "desired_state", "rejected", str(e)), now_ns)
            return
        if delta.version <= self.desired_version:
            # A re-delivery or a reordered older delta: the newer one is in force already.
            self.stale_desired += 1
            self.buffer.put_state({_STATE_DOWNLINK: self.guard.state.to_json()})
            return
        if self.actuator is None:
            self._acknowledge(
                Ack(
                    ref, "desired_state", "rejected", "this vehicle has no actuators", delta.version
                ),
                now_ns,
            )
            return
        try:
            applied = self.actuator.apply_desired(delta.values)
        except BadInputError as e:
            self._acknowledge(Ack(ref, "desired_state", "rejected", str(e), delta.version), now_ns)
            return
        self.desired_version = delta.version
        numeric = {
            p: v
            for p, v in applied.items()
            if isinstance(v, bool | int | float) and np.isfinite(float(v))
        }
        if numeric:  # report the new values now, not at the next sampling period
            self._seal_telemetry(Samples.from_values(numeric, now_ns), REPORT_PRIORITY, now_ns)
        self._acknowledge(
            Ack(ref, "desired_state", "applied", "", delta.version),
            now_ns,
            {_STATE_DESIRED: str(delta.version)},
        )

    def _install_campaign(self, accepted: Accepted, now_ns: int) -> None:
        ref = accepted.envelope.message_id
        version = accepted.body.get("version")
        version = version if isinstance(version, int) and not isinstance(version, bool) else None
        try:
            campaign = Campaign.from_dict(accepted.body, self.catalog)
            outcome = self.engine.install(campaign)
        except (CampaignFormatError, ConflictError) as e:
            self._acknowledge(Ack(ref, "campaign", "rejected", str(e), version), now_ns)
            return
        self._acknowledge(
            Ack(ref, "campaign", "applied", f"{campaign.id}: {outcome}", campaign.version),
            now_ns,
            self._campaign_state(),
        )

    def _campaign_state(self) -> dict[str, str]:
        return {
            _STATE_CAMPAIGNS: json.dumps([c.to_dict() for c in self.engine.campaigns]),
            _STATE_VERSIONS: json.dumps(self.engine.versions),
        }

    def _save_campaigns(self) -> None:
        self.buffer.put_state(self._campaign_state())

    def _run_command(self, accepted: Accepted, now_ns: int) -> None:
        ref = accepted.envelope.message_id
        try:
            command = Command.from_dict(accepted.body)
            if self.actuator is None:
                raise BadInputError("this vehicle has no actuators")
            detail = self.actuator.execute(command.name, command.args)
        except BadInputError as e:  # WireFormatError included
            self._acknowledge(Ack(ref, "command", "rejected", str(e)), now_ns)
            return
        self._acknowledge(Ack(ref, "command", "applied", detail), now_ns)

    def _report_refusals(self, now_ns: int) -> None:
        if not self._refusals_unreported:
            return
        if now_ns - self._last_refusal_report_ns < self.config.refusal_report_interval_s * _NS:
            return
        counts, self._refusals_unreported = dict(self._refusals_unreported), Counter()
        self._last_refusal_report_ns = now_ns
        self._events.append(
            VehicleEvent("edge.downlink.refused", now_ns, "high", {"counts": counts})
        )

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
        self._save_campaigns()

    def stats(self) -> AgentStats:
        buffer = self.buffer.stats()
        return AgentStats(
            ticks=self._ticks,
            samples_in=self._samples_in,
            samples_collected=self._samples_collected,
            batches_sealed=self._batches,
            bytes_sealed=self._bytes,
            events_sent=self._events_sent,
            triggers_fired=self._fired,
            evicted_messages=buffer.evicted_messages,
            buffered_messages=buffer.messages,
            buffered_bytes=buffer.bytes,
            downlink_accepted=dict(self.guard.accepted),
            downlink_refused=dict(self.guard.refused),
            acks_sent=dict(self._acks),
            uplink=self.uplink.stats(),
            campaigns=tuple(c.id for c in self.engine.campaigns),
        )
