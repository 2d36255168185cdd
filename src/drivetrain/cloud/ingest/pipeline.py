"""The ingest pipeline: a micro-batch of uplink payloads in; lake rows, reported state, events,
acks, dead letters and counters out — in one state-database transaction per micro-batch.

Steps (docs/ingest.md):

1. **Open** each message (:mod:`.envelopes`: parse, topic, registry lookup, signature, body):
   a message-level failure dead-letters the raw payload with its reason.
2. **Skip duplicates**: a batch id in the ledger of ingested batches (or twice in one
   micro-batch) is a re-delivery: counted as ``duplicate``, nothing else happens.
3. **Route** (:mod:`.telemetry_route`, :mod:`.event_route`): judge every sample of every
   telemetry batch at once, append the accepted ones to the lake per (region, tenant) with
   pseudonymised vehicle ids, report the latest values to the twins; store events, route acks
   and ECU inventories.
4. **Record** (:mod:`.tally`): dead letters, per-vehicle counters and the ledger rows, then
   commit.

The lake append happens before the commit. If anything fails after it, the transaction rolls
back and the caller must not acknowledge the messages; on re-delivery the lake skips the batch
ids it already committed, so every sample is stored exactly once. A failure that repeats is
the worker's to isolate (:mod:`.isolation`).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle, cloud_signing_key
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import records
from drivetrain.cloud.ingest.announce import Announcer
from drivetrain.cloud.ingest.campaign_outputs import CampaignOutputCache
from drivetrain.cloud.ingest.dead_letter_gate import DeadLetterGate
from drivetrain.cloud.ingest.directory import VehicleDirectory
from drivetrain.cloud.ingest.envelopes import (
    MAX_CLAIMED_VIN,
    OpenedMessage,
    RawMessage,
    RejectedMessage,
    open_message,
)
from drivetrain.cloud.ingest.event_route import route_other
from drivetrain.cloud.ingest.isolation import is_transient
from drivetrain.cloud.ingest.limits import IngestLimits
from drivetrain.cloud.ingest.microbatch import MicroBatch, utc_datetime
from drivetrain.cloud.ingest.pending_reports import PendingReports
from drivetrain.cloud.ingest.results import AuthenticBatch, IngestReport, MessageResult
from drivetrain.cloud.ingest.session_recovery import SessionFollowUp, replayable
from drivetrain.cloud.ingest.sessions import SessionBook, SessionKeys
from drivetrain.cloud.ingest.sinks import LakeWriter, ReportedStateSink
from drivetrain.cloud.ingest.tally import Tally
from drivetrain.cloud.ingest.telemetry_route import route_telemetry
from drivetrain.cloud.ingest.validation import PathTable, TimestampWindow
from drivetrain.cloud.ingest.vehicle_catalogs import VehicleCatalogs
from drivetrain.cloud.ingest.webhooks import WebhookSender
from drivetrain.cloud.privacy import Pseudonymiser, pseudonymiser
from drivetrain.core import tracing
from drivetrain.core.crypto import SigningKey
from drivetrain.core.errors import (
    ConfigurationError,
    ConflictError,
    KeyFormatError,
    TransportError,
    WireFormatError,
)
from drivetrain.core.privacy_policy import MinimisationPolicy, active_policy
from drivetrain.core.settings import Settings
from drivetrain.core.transport import TOPIC_ROOT, Transport
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.wire import REPLAY_WINDOW, parse

_log = logging.getLogger("drivetrain.ingest")

#: Domains the pipeline imports only when it runs (a module-level import would be circular:
#: they reach ingestion through the commands dispatcher), loaded when a pipeline is built.
DEFERRED_DOMAINS: Final = ("drivetrain.cloud.campaigns", "drivetrain.cloud.twins")
#: Unknown paths remembered before the path table starts afresh (a vehicle sending random
#: paths must not grow the receiver's memory without bound).
MAX_UNKNOWN_PATHS: Final = 10_000
_VEHICLE_TOPIC_PREFIX: Final = TOPIC_ROOT + "/"

#: Called inside the transaction after routing with the report so far and the number of
#: pending dead letters; returning False drops them and the ledger rows (a replay that
#: changed nothing).
OnRouted = Callable[[Session, IngestReport, int], bool]


class IngestPipeline:
    """Validates and routes micro-batches of uplink messages (see the module docstring).

    Args:
        database: the state database (registry, consent, pseudonym keys, ingest tables).
        lake: where accepted samples go (``drivetrain.cloud.lake.Lake`` or ``MemoryLake``).
        reported: the twins' reported state and acks (or ``MemoryReportedState``).
        catalog: the VSS catalog samples are checked against (default: the built-in one).
        window: plausible sample timestamps relative to the receiver's clock.
        clock: the receiver's clock, ns since the epoch.
        vehicle_cache_ttl_s: how long registry answers are reused.
        limits: caps on messages, bodies and dead letters (default :class:`IngestLimits`).
        twin_flush_s: 0 writes each micro-batch's latest values to the twins in its own
            transaction; more keeps them pending (:mod:`.pending_reports`) until
            :meth:`flush_reported`, which the worker calls at most this often and when idle.
        policy: the per-region minimisation policy (default: :func:`active_policy`, the
            shipped one or ``$DRIVETRAIN_PRIVACY_POLICY``): values are stored no more precise
            than the vehicle's region allows, and its default-off categories need consent.
        platform_key: the cloud's key, which vehicle sessions are opened with
            (:mod:`.sessions`); None: no session opens, their envelopes are refused.

    ``process`` is thread-safe (calls are serialised).
    """

    def __init__(
        self,
        database: Database,
        lake: LakeWriter,
        reported: ReportedStateSink,
        *,
        catalog: Catalog | None = None,
        window: TimestampWindow | None = None,
        clock: Callable[[], int] = time.time_ns,
        vehicle_cache_ttl_s: float = 5.0,
        limits: IngestLimits | None = None,
        twin_flush_s: float = 0.0,
        policy: MinimisationPolicy | None = None,
        platform_key: SigningKey | None = None,
    ) -> None:
        self.database = database
        self.sessions = SessionKeys(platform_key)
        self.lake = lake
        self.reported = reported
        self.catalog = catalog or builtin_catalog()
        self.window = window or TimestampWindow.of_seconds(30 * 86_400, 300)
        self.clock = clock
        self.vehicles = VehicleDirectory(vehicle_cache_ttl_s)
        # Custom signals: judged against the catalog each vehicle's decoder manifest names.
        self.catalogs = VehicleCatalogs(vehicle_cache_ttl_s)
        # Campaigns' dimensions and destinations; their streams go to ``stream_to`` (the
        # vehicle link of the worker) once committed — None: not streamed.
        self.campaign_outputs = CampaignOutputCache(vehicle_cache_ttl_s)
        self.stream_to: Transport | None = None
        #: Streamed messages published / refused by the transport (at most once).
        self.streamed = 0
        self.stream_failures = 0
        #: Where campaigns' webhook posts go once committed (None: webhooks not fed).
        self.webhooks: WebhookSender | None = None
        #: Announces each committed telemetry batch and security report on the fleet
        #: profile's backbone (:mod:`.announce`); None in the embedded deployment.
        self.announcer: Announcer | None = None
        self.limits = limits or IngestLimits()
        self.policy = policy or active_policy()
        self.dead_letter_gate = DeadLetterGate(
            self.limits.dead_letters_per_minute,
            per_minute_by_reason={"unknown_session": REPLAY_WINDOW},
        )
        if twin_flush_s < 0:
            raise ValueError(f"twin_flush_s must be >= 0, got {twin_flush_s}")
        self.twin_flush_s = twin_flush_s
        self._pending = PendingReports() if twin_flush_s > 0 else None
        self._paths = PathTable(self.catalog)
        # Per tenant: its pseudonymiser and when it was read (monotonic s); re-read after
        # ``vehicle_cache_ttl_s`` so that a rotated key reaches a running worker.
        self._pseudonymisers: dict[str, tuple[Pseudonymiser, float]] = {}
        self._pseudonym_ttl_s = vehicle_cache_ttl_s
        self._lock = threading.Lock()
        self._follow_up = SessionFollowUp({}, ())
        # Loaded now rather than by the first message that needs them: the campaigns domain
        # pulls in the edge and TUF packages, a third of a CPU second a worker would
        # otherwise spend inside its first micro-batch.
        for module in DEFERRED_DOMAINS:
            importlib.import_module(module)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: Database,
        lake: LakeWriter,
        reported: ReportedStateSink,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], int] = time.time_ns,
        twin_flush_s: float | None = None,
    ) -> IngestPipeline:
        """A pipeline with the timestamp window, registry cache, caps and twin flush interval
        from ``settings`` (``twin_flush_s`` overrides the latter)."""
        window = TimestampWindow.of_seconds(
            settings.ingest_max_sample_age_s, settings.ingest_max_clock_ahead_s
        )
        return cls(
            database,
            lake,
            reported,
            catalog=catalog,
            window=window,
            clock=clock,
            vehicle_cache_ttl_s=settings.ingest_vehicle_cache_ttl_s,
            limits=IngestLimits.from_settings(settings),
            twin_flush_s=settings.ingest_twin_flush_s if twin_flush_s is None else twin_flush_s,
            platform_key=_platform_key(settings),
        )

    @property
    def paths(self) -> PathTable:
        """The path table (distinct paths seen, with their catalog entries)."""
        return self._paths

    def process(self, messages: Sequence[RawMessage], *, now_ns: int | None = None) -> IngestReport:
        """Ingest a micro-batch; returns once everything is committed.

        Never raises for bad data (that is dead-lettered). Raises ``StorageError`` or
        ``ConflictError`` when the state database or the lake failed: nothing of the
        micro-batch was committed to the database, and the messages must be redelivered.
        """
        with self._lock:
            report = self.run(messages, now_ns=now_ns, replay_of=None)
            self._recover_sessions()
            return report

    def _recover_sessions(self) -> None:
        """Replay the ``unknown_session`` dead letters the micro-batch just committed made
        replayable (:mod:`.session_recovery`). A failure leaves them open, replayable later
        by hand: the micro-batch itself is committed and must be acknowledged."""
        follow_up, self._follow_up = self._follow_up, SessionFollowUp({}, ())
        if not follow_up:
            return
        from drivetrain.cloud.ingest.replay import replay_dead_letters  # imports this module

        try:
            with self.database.session() as session:
                ids = replayable(session, follow_up)
            if ids:
                replay_dead_letters(self, ids)
        except Exception as e:  # noqa: BLE001 - what failed stays an open dead letter
            _log.warning("unknown_session dead letters not replayed now: %s", e)

    def run(
        self,
        messages: Sequence[RawMessage],
        *,
        now_ns: int | None,
        replay_of: int | None,
        extra_batches: Sequence[AuthenticBatch] = (),
        on_routed: OnRouted | None = None,
    ) -> IngestReport:
        """``process`` without the lock, for the replay of dead letters: ``extra_batches``
        are already-authentic batches routed with the messages (see :data:`OnRouted`)."""
        if len(self._paths) > len(self.catalog) + MAX_UNKNOWN_PATHS:
            self._paths = self._fresh_path_table()
        now_ns = self.clock() if now_ns is None else now_ns
        tally = Tally(len(messages) + len(extra_batches), utc_datetime(now_ns), replay_of)
        with (
            tracing.span("ingest.process", {"messaging.batch.message_count": len(messages)})
            as process_span,
            self.database.session() as session,
        ):
            batches: list[AuthenticBatch] = list(extra_batches)
            refused: list[tuple[int, RejectedMessage]] = []
            producers: list[str] = []
            with tracing.span("ingest.decode", {"messaging.batch.message_count": len(messages)}):
                # One registry query for the micro-batch (the VINs the topics name: a message
                # is looked up only once its topic and envelope name the same VIN).
                known = self.vehicles.prefetch(session, {_topic_vin(m.topic) for m in messages})

                def lookup(vin: str) -> Vehicle | None:
                    return known[vin] if vin in known else self.vehicles.lookup(session, vin)

                book = self.sessions.book(session)
                macd: dict[int, OpenedMessage] = {}  # authentic by a session's MAC
                opens: dict[int, str] = {}  # session_open envelopes: the session each opens
                later: list[int] = []

                def take(i: int, opened: OpenedMessage | RejectedMessage) -> None:
                    if isinstance(opened, RejectedMessage):
                        refused.append((i, opened))
                        return
                    batches.append(AuthenticBatch.of(i, opened))
                    if opened.envelope.session_id is not None:
                        macd[i] = opened
                    if opened.opened_session is not None:
                        opens[i] = opened.opened_session
                    if process_span is not None:
                        parent = opened.envelope.extra_header.get(tracing.TRACEPARENT)
                        if isinstance(parent, str):
                            producers.append(parent)

                for i, raw in enumerate(messages):
                    opened = open_message(raw, lookup, self._paths, self.limits, book)
                    if isinstance(opened, RejectedMessage) and opened.reason == "unknown_session":
                        later.append(i)  # its session_open may come later in this micro-batch
                    else:
                        take(i, opened)
                for i in later:
                    take(i, open_message(messages[i], lookup, self._paths, self.limits, book))
            tracing.add_links(process_span, producers)
            tally.refuse_messages(refused)
            mb = MicroBatch(
                session=session,
                now_ns=now_ns,
                bounds=self.window.bounds(now_ns),
                paths=self._paths,
                lake=self.lake,
                reported=self.reported,
                pseudonyms=self._pseudonyms,
                tally=tally,
                pending=self._pending if replay_of is None else None,
                catalogs=self.catalogs,
                outputs=self.campaign_outputs,
                policy=self.policy,
            )
            fresh = _skip_duplicates(mb, batches)
            if macd:
                fresh = _admit_sequences(book, fresh, macd, tally)
            opened_sessions = [opens[b.source] for b in fresh if b.source in opens]
            route_telemetry(mb, [b for b in fresh if b.telemetry is not None])
            for batch in fresh:
                if batch.telemetry is None:
                    route_other(mb, batch)
            keep = True
            if on_routed is not None:
                keep = on_routed(session, tally.report(0), len(tally.drafts))
            if keep:
                book.write(opened_sessions, mb.received_at)
            with tracing.span("ingest.commit"):
                report = tally.finish(
                    session,
                    write=keep,
                    gate=self.dead_letter_gate,
                    unverified_max_bytes=self.limits.dead_letter_max_bytes,
                )
        if keep:
            book.committed(opened_sessions)
            if replay_of is None:
                self._follow_up = _follow_up(book, opened_sessions, tally)
            self._publish_streams(mb.streams)
            if self.webhooks is not None:
                for post in mb.webhooks:  # never blocks: a full queue drops (counted)
                    self.webhooks.submit(post)
            if self.announcer is not None:  # duplicates too: a retry re-announces them
                self.announcer.announce(batches, utc_datetime(now_ns))
        return report

    def _publish_streams(self, streams: Sequence[tuple[str, bytes]]) -> None:
        """Publish campaigns' streamed messages (after commit; at most once)."""
        if self.stream_to is None:
            return
        for topic, payload in streams:
            try:
                self.stream_to.publish(topic, payload, qos=1)
            except TransportError as e:
                self.stream_failures += 1
                _log.warning("campaign stream to %s not published: %s", topic, e)
            else:
                self.streamed += 1

    @property
    def pending_reports(self) -> int:
        """Latest values waiting for the twins (0 when each micro-batch writes its own)."""
        return len(self._pending) if self._pending is not None else 0

    def flush_reported(self) -> int:
        """Write the pending latest values to the twins, in a transaction of their own;
        returns how many. On a failure they stay pending for the next call (the caller may
        give up on them with :meth:`drop_pending_reports`).

        Raises ``StorageError`` when the database fails, or what the twins raise.
        """
        with self._lock:
            return self._flush_reported()

    def drop_pending_reports(self) -> int:
        """Forget the pending latest values (after the twins refused them again and again;
        every sample is in the lake). Returns how many."""
        with self._lock:
            count = len(self._pending) if self._pending is not None else 0
            if self._pending is not None:
                self._pending.clear()
            return count

    def _flush_reported(self) -> int:
        if self._pending is None or not len(self._pending):
            return 0
        count = len(self._pending)
        reports = self._pending.reports(self._paths)
        with (
            tracing.span("twins.update", {"drivetrain.twins.vehicles": reports.vehicles,
                                          "drivetrain.twins.deferred": True}),
            self.database.session() as session,
        ):
            if reports.values_count:
                self.reported.apply_reported(session, reports)
        self._pending.clear()
        return count

    def set_aside(
        self, raw: RawMessage, error: BaseException, attempts: int, *, attribute: bool = True
    ) -> IngestReport:
        """Dead-letter ``raw`` as ``processing_error`` (the pipeline failed on it ``attempts``
        times with ``error``), in a transaction of its own, with its raw bytes whole.

        ``attribute`` reads the claimed VIN, batch id and kind from the envelope (never
        trusted) and the tenant from the registry; False stores the bare bytes (the fallback
        when even that fails). Raises ``StorageError`` when the database fails.
        """
        with self._lock:
            now_ns = self.clock()
            tally = Tally(1, utc_datetime(now_ns), None)
            detail = (
                f"the pipeline failed on this message {attempts} time(s): "
                f"{type(error).__name__}: {error}"
            )
            with self.database.session() as session:
                vin, batch_id, kind, tenant = "", None, "unknown", None
                if attribute:
                    vin, batch_id, kind = _claims(raw)
                    vehicle = self.vehicles.lookup(session, vin) if vin else None
                    tenant = vehicle.tenant if vehicle is not None else None
                tally.set_aside(
                    raw, vin=vin, batch_id=batch_id, kind=kind, tenant=tenant, detail=detail
                )
                return tally.finish(session, gate=self.dead_letter_gate)

    def _fresh_path_table(self) -> PathTable:
        """A new path table; pending latest values name ids of the old one, so they are
        written first (or, if the twins refuse them, dropped: they are in the lake)."""
        try:
            self._flush_reported()
        except Exception as e:  # judged just below: transient or not
            if is_transient(e):
                raise
            _log.error(
                "dropping %d latest values the twins refused: %s", len(self._pending or ()), e
            )
            if self._pending is not None:
                self._pending.clear()
        return PathTable(self.catalog)

    def _pseudonyms(self, vehicles: Sequence[Vehicle]) -> list[str]:
        return [self._pseudonymiser(v.tenant)(v.vin) for v in vehicles]

    def _pseudonymiser(self, tenant: str) -> Pseudonymiser:
        """The tenant's pseudonymiser, cached for ``vehicle_cache_ttl_s`` (a rotated key is
        used from the next read on); its first key is created in a transaction of its own
        (two workers creating it at once: the loser reads the winner's)."""
        now = time.monotonic()
        cached = self._pseudonymisers.get(tenant)
        if cached is not None and now - cached[1] < self._pseudonym_ttl_s:
            return cached[0]
        try:
            with self.database.session() as session:
                make = pseudonymiser(session, tenant)
        except ConflictError:
            with self.database.session() as session:
                make = pseudonymiser(session, tenant)
        self._pseudonymisers[tenant] = (make, now)
        return make


def _topic_vin(topic: str) -> str:
    """The VIN level of a ``dt/v1/{vin}/...`` topic, unchecked ("" for another topic)."""
    if not topic.startswith(_VEHICLE_TOPIC_PREFIX):
        return ""
    return topic[len(_VEHICLE_TOPIC_PREFIX) :].partition("/")[0]


def _claims(raw: RawMessage) -> tuple[str, str | None, str]:
    """The VIN, batch id and kind an envelope claims, or ("", None, "unknown")."""
    try:
        envelope = parse(raw.payload)
    except WireFormatError:
        return "", None, "unknown"
    return envelope.vehicle_id[:MAX_CLAIMED_VIN], envelope.message_id, envelope.kind.name.lower()


def _admit_sequences(
    book: SessionBook, fresh: list[AuthenticBatch], macd: dict[int, OpenedMessage], tally: Tally
) -> list[AuthenticBatch]:
    """``fresh`` less the MAC'd envelopes whose sequence number is a replay in their session
    (refused as ``replayed_seq``); checked after duplicates, so a re-delivery stays one."""
    kept: list[AuthenticBatch] = []
    replayed: list[tuple[int, RejectedMessage]] = []
    for batch in fresh:
        opened = macd.get(batch.source)
        session_id = opened.envelope.session_id if opened is not None else None
        why = book.replayed(session_id, opened.envelope.seq) if opened and session_id else None
        if opened is None or why is None:
            kept.append(batch)
            continue
        replayed.append((batch.source, RejectedMessage(
            opened.raw, "replayed_seq", why, batch.vehicle.vin, batch.batch_id, batch.kind,
            batch.vehicle.tenant, True,
        )))  # fmt: skip
    if replayed:
        tally.refuse_messages(replayed)
    return kept


def _follow_up(book: SessionBook, opened: Sequence[str], tally: Tally) -> SessionFollowUp:
    """The sessions a committed micro-batch opened and its ``unknown_session`` dead letters."""
    vins = {s: entry.vin for s in opened if (entry := book.get(s)) is not None}
    refused = tuple(d.dedup_key for d in tally.drafts if d.reason == "unknown_session")
    return SessionFollowUp(vins, refused)


def _platform_key(settings: Settings) -> SigningKey | None:
    """The cloud's key, for vehicle sessions; None where this process has none (its
    session envelopes are then ``unknown_session``)."""
    try:
        return cloud_signing_key(settings)
    except (ConfigurationError, KeyFormatError) as e:
        _log.warning("no platform key, so no vehicle sessions: %s", e)
        return None


def _skip_duplicates(mb: MicroBatch, batches: Sequence[AuthenticBatch]) -> list[AuthenticBatch]:
    """The batches not ingested before (nor earlier in this micro-batch); the others are
    counted as ``duplicate``."""
    known = records.seen_batches(mb.session, {b.batch_id for b in batches})
    fresh: list[AuthenticBatch] = []
    for batch in batches:
        vehicle = batch.vehicle
        if batch.batch_id in known:
            mb.tally.result(batch.source, MessageResult("duplicate", vehicle.vin, batch.batch_id))
            mb.tally.count(vehicle.tenant, vehicle.vin, "duplicate", 1, 0)
            continue
        known.add(batch.batch_id)
        fresh.append(batch)
        mb.tally.mark_fresh(batch)
    return fresh
