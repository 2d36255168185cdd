"""The ingest pipeline: a micro-batch of uplink payloads in; lake rows, reported state, events,
acks, dead letters and counters out — in one state-database transaction per micro-batch.

Steps (docs/ingest.md):

1. **Open** each message (parse, topic, registry lookup, signature, body): a message-level
   failure dead-letters the raw payload with its reason.
2. **Skip duplicates**: a batch id in the ledger of ingested batches (or twice in one
   micro-batch) is a re-delivery: counted as ``duplicate``, nothing else happens.
3. **Judge** every sample of every telemetry batch at once (:mod:`.validation`), with the
   vehicles' consent fetched once per micro-batch.
4. **Route** accepted samples: one ``Lake.append`` per (region, tenant), vehicle ids
   pseudonymised per distinct VIN; the latest value per (VIN, path) to the twins' reported
   state; events to the vehicle-events store; acks and ECU inventories (``vehicle.inventory``
   events) to the twins.
5. **Record** refused samples as sample-level dead letters (one per batch and reason), bump
   the per-vehicle counters, add the batch ids to the ledger, and commit.

The lake append happens before the commit. If anything fails after it, the transaction rolls
back and the caller must not acknowledge the messages; on re-delivery the lake skips the batch
ids it already committed, so every sample is stored exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle, get_vehicle
from drivetrain.cloud.infra import Database
from drivetrain.cloud.ingest import assembly, records
from drivetrain.cloud.ingest.envelopes import (
    OpenedMessage,
    RawMessage,
    RejectedMessage,
    TelemetryBody,
    open_message,
)
from drivetrain.cloud.ingest.reasons import (
    ACCEPTED_CODE,
    CODE_OUTCOMES,
    NOT_CONSENTED_CODE,
    SampleReason,
)
from drivetrain.cloud.ingest.records import DeadLetterDraft
from drivetrain.cloud.ingest.sinks import LakeWriter, ReportedStateSink
from drivetrain.cloud.ingest.validation import (
    PathTable,
    SampleColumns,
    TimestampWindow,
    consent_array,
    explain_sample,
    judge_samples,
)
from drivetrain.cloud.privacy import Pseudonymiser, consent_map, pseudonymiser
from drivetrain.core.errors import BadInputError, ConflictError, NotFoundError
from drivetrain.core.settings import Settings
from drivetrain.core.vss import Catalog, builtin_catalog
from drivetrain.core.vss.privacy import PRIVACY_CATEGORIES
from drivetrain.core.wire import INVENTORY_EVENT, Ack, VehicleEvent, inventory_from_event

#: Unknown paths remembered before the path table starts afresh (a vehicle sending random
#: paths must not grow the receiver's memory without bound).
MAX_UNKNOWN_PATHS: Final = 10_000
#: Examples quoted in a sample-level dead letter's detail.
DETAIL_EXAMPLES: Final = 3

MessageStatus = str  # "stored" | "duplicate" | "refused"


@dataclass(frozen=True)
class MessageResult:
    """What became of one input message.

    Attributes:
        status: ``stored`` (processed: its valid content was routed), ``duplicate`` (its batch
            id was ingested before) or ``refused`` (message-level reason).
        reason, detail: the message-level reason and cause, for ``refused``.
        accepted: samples (or events) stored.
        refused: samples (or events) dead-lettered, per reason.
        not_consented: samples dropped by consent.
    """

    status: MessageStatus
    vin: str
    batch_id: str | None
    reason: str | None = None
    detail: str = ""
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    not_consented: int = 0


@dataclass(frozen=True)
class IngestReport:
    """What one micro-batch did; ``results`` is one entry per input, in order.

    ``not_consented_by_category`` splits the samples dropped by consent by privacy category
    (so that a user can be told that N speed samples were dropped, and why).
    """

    results: tuple[MessageResult, ...]
    rows_written: int
    rows_skipped: int
    dead_letters: int
    not_consented_by_category: Mapping[str, int] = field(default_factory=dict)

    @property
    def samples_accepted(self) -> int:
        return sum(r.accepted for r in self.results)

    @property
    def samples_refused(self) -> int:
        return sum(sum(r.refused.values()) for r in self.results)

    @property
    def samples_not_consented(self) -> int:
        return sum(r.not_consented for r in self.results)

    def count(self, status: MessageStatus) -> int:
        """Messages with ``status``."""
        return sum(r.status == status for r in self.results)


@dataclass(frozen=True)
class _Unit:
    """An authentic, readable batch on its way through the pipeline."""

    source: int
    vehicle: Vehicle
    batch_id: str
    kind: str
    topic: str
    telemetry: TelemetryBody | None = None
    events: tuple[VehicleEvent, ...] = ()
    ack: Ack | None = None
    #: The envelope as received (kept in a dead letter if the message is refused later).
    raw: bytes = b""
    sent_ns: int = 0


class VehicleDirectory:
    """Registry lookups with a short cache (hits and misses), so a micro-batch of many
    messages from few vehicles costs few queries. ``ttl_s`` bounds how long a retirement,
    key rotation or late registration takes to be seen (0: always ask)."""

    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, tuple[Vehicle | None, float]] = {}

    def lookup(self, session: Session, vin: str) -> Vehicle | None:
        """The registered vehicle ``vin``, or None (not registered, or not a VIN at all)."""
        now = self._clock()
        cached = self._cache.get(vin)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            vehicle: Vehicle | None = get_vehicle(session, vin)
        except (NotFoundError, BadInputError):
            vehicle = None
        if self._ttl_s > 0:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[vin] = (vehicle, now + self._ttl_s)
        return vehicle

    def forget(self) -> None:
        """Drop every cached answer."""
        self._cache.clear()


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
    ) -> None:
        self.database = database
        self.lake = lake
        self.reported = reported
        self.catalog = catalog or builtin_catalog()
        self.window = window or TimestampWindow.of_seconds(30 * 86_400, 300)
        self.clock = clock
        self.vehicles = VehicleDirectory(vehicle_cache_ttl_s)
        self._paths = PathTable(self.catalog)
        self._pseudonymisers: dict[str, Pseudonymiser] = {}
        self._lock = threading.Lock()

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
    ) -> IngestPipeline:
        """A pipeline with the timestamp window and registry cache from ``settings``."""
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
            return self._process(messages, now_ns=now_ns, replay_of=None)

    # --- internals (also driven by replay) ----------------------------------------------------

    def _process(
        self,
        messages: Sequence[RawMessage],
        *,
        now_ns: int | None,
        replay_of: int | None,
        extra_units: Sequence[_Unit] = (),
        on_routed: Callable[[Session, IngestReport, int], bool] | None = None,
    ) -> IngestReport:
        """``on_routed(session, report, pending dead letters)`` runs inside the transaction
        after routing; returning False drops the pending dead letters and ledger rows (a
        replay that changed nothing)."""
        if len(self._paths) > len(self.catalog) + MAX_UNKNOWN_PATHS:
            self._paths = PathTable(self.catalog)
        now_ns = self.clock() if now_ns is None else now_ns
        received_at = _datetime(now_ns)
        with self.database.session() as session:
            results: list[MessageResult | None] = [None] * (len(messages) + len(extra_units))
            units: list[_Unit] = list(extra_units)
            refused: list[tuple[int, RejectedMessage]] = []
            for i, raw in enumerate(messages):
                opened = open_message(
                    raw, lambda vin: self.vehicles.lookup(session, vin), self._paths
                )
                if isinstance(opened, RejectedMessage):
                    refused.append((i, opened))
                else:
                    units.append(_unit(i, opened))
            run = _Run(self, session, now_ns, received_at, replay_of, results)
            run.refuse_messages(refused)
            run.route(units)
            keep = True
            if on_routed is not None:
                keep = on_routed(session, run.report(0), len(run.drafts))
            return run.finish(write=keep)

    def _pseudonyms(self, vehicles: Sequence[Vehicle]) -> list[str]:
        return [self._pseudonymiser(v.tenant)(v.vin) for v in vehicles]

    def _pseudonymiser(self, tenant: str) -> Pseudonymiser:
        """The tenant's pseudonymiser, cached; its key is created in a transaction of its own
        (two workers creating it at once: the loser reads the winner's)."""
        make = self._pseudonymisers.get(tenant)
        if make is None:
            try:
                with self.database.session() as session:
                    make = pseudonymiser(session, tenant)
            except ConflictError:
                with self.database.session() as session:
                    make = pseudonymiser(session, tenant)
            self._pseudonymisers[tenant] = make
        return make


def _unit(source: int, opened: OpenedMessage) -> _Unit:
    kind = opened.envelope.kind.name.lower()
    return _Unit(
        source=source,
        vehicle=opened.vehicle,
        batch_id=opened.batch_id,
        kind=kind,
        topic=opened.raw.topic,
        telemetry=opened.telemetry,
        events=opened.events,
        ack=opened.ack,
        raw=bytes(opened.raw.payload),
        sent_ns=opened.envelope.sent_ns,
    )


def _datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _iso_ns(ns: int) -> str:
    try:
        return _datetime(ns).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


class _Run:
    """One micro-batch inside its transaction (state that lives for one ``_process`` call)."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        session: Session,
        now_ns: int,
        received_at: datetime,
        replay_of: int | None,
        results: list[MessageResult | None],
    ) -> None:
        self.p = pipeline
        self.session = session
        self.now_ns = now_ns
        self.received_at = received_at
        self.replay_of = replay_of
        self.results = results
        self.bounds = pipeline.window.bounds(now_ns)
        self.drafts: list[DeadLetterDraft] = []
        self.counters: Counter[tuple[str, str, str]] = Counter()
        self.counter_samples: Counter[tuple[str, str, str]] = Counter()
        self.rows_written = 0
        self.rows_skipped = 0
        self.seen: list[tuple[str, str, str]] = []
        self.not_consented_by_category: Counter[str] = Counter()

    def count(
        self, tenant: str | None, vin: str, outcome: str, messages: int, samples: int
    ) -> None:
        key = (tenant or "", vin, outcome)
        self.counters[key] += messages
        self.counter_samples[key] += samples

    # --- message level ------------------------------------------------------------------------
    def refuse_messages(self, refused: Sequence[tuple[int, RejectedMessage]]) -> None:
        for i, message in refused:
            self.results[i] = MessageResult(
                "refused", message.vin, message.batch_id, message.reason, message.detail
            )
            if self.replay_of is not None:
                continue  # a replay reports; the dead letter being replayed stays as it is
            self.drafts.append(
                DeadLetterDraft(
                    received_at=self.received_at,
                    vin=message.vin,
                    tenant=message.tenant,
                    topic=message.raw.topic,
                    kind=message.kind,
                    batch_id=message.batch_id,
                    level="message",
                    reason=message.reason,
                    detail=message.detail,
                    sample_count=0,
                    payload_format="envelope",
                    payload=bytes(message.raw.payload),
                )
            )
            self.count(message.tenant, message.vin, message.reason, 1, 0)

    # --- batches --------------------------------------------------------------------------------
    def route(self, units: Sequence[_Unit]) -> None:
        known = records.seen_batches(self.session, {u.batch_id for u in units})
        fresh: list[_Unit] = []
        for unit in units:
            if unit.batch_id in known:
                self.results[unit.source] = MessageResult(
                    "duplicate", unit.vehicle.vin, unit.batch_id
                )
                self.count(unit.vehicle.tenant, unit.vehicle.vin, "duplicate", 1, 0)
                continue
            known.add(unit.batch_id)
            fresh.append(unit)
            self.seen.append((unit.batch_id, unit.vehicle.vin, unit.kind))
        self._telemetry([u for u in fresh if u.telemetry is not None])
        for unit in fresh:
            if unit.events:
                self._events(unit)
            elif unit.ack is not None:
                self._ack(unit, unit.ack)
            elif unit.telemetry is None:  # an events message with no events
                self.results[unit.source] = MessageResult("stored", unit.vehicle.vin, unit.batch_id)
                self.count(unit.vehicle.tenant, unit.vehicle.vin, "accepted", 1, 0)

    def _telemetry(self, units: Sequence[_Unit]) -> None:
        if not units:
            return
        vehicles: list[Vehicle] = []
        index_of: dict[str, int] = {}
        for unit in units:
            if unit.vehicle.vin not in index_of:
                index_of[unit.vehicle.vin] = len(vehicles)
                vehicles.append(unit.vehicle)
        vehicle_of_body = [index_of[u.vehicle.vin] for u in units]
        bodies = [u.telemetry for u in units if u.telemetry is not None]
        columns, body_index = assembly.join_bodies(bodies, vehicle_of_body)
        vins = [v.vin for v in vehicles]
        consent = consent_array(vins, consent_map(self.session, vins))
        codes = judge_samples(columns, self.p.paths, consent, self.bounds)
        accepted = codes == ACCEPTED_CODE
        self._count_not_consented(columns, codes)
        self._append_to_lake(units, vehicles, vehicle_of_body, columns, body_index, accepted)
        reports = assembly.latest_reports(columns, accepted, vins, self.p.paths)
        if reports:
            self.p.reported.apply_reported(self.session, reports)
        self._refused_samples(units, columns, body_index, codes)
        counts = assembly.count_outcomes(
            codes, body_index, [len(b) for b in bodies], vehicle_of_body, len(vehicles)
        )
        for v, vehicle in enumerate(vehicles):
            for code in np.flatnonzero(counts.samples[v]):
                self.count(
                    vehicle.tenant,
                    vehicle.vin,
                    CODE_OUTCOMES[code],
                    int(counts.messages[v, code]),
                    int(counts.samples[v, code]),
                )
        for b, unit in enumerate(units):
            row = counts.per_body[b]
            self.results[unit.source] = MessageResult(
                "stored",
                unit.vehicle.vin,
                unit.batch_id,
                accepted=int(row[ACCEPTED_CODE]),
                refused={
                    CODE_OUTCOMES[c]: int(row[c])
                    for c in np.flatnonzero(row)
                    if c not in (ACCEPTED_CODE, NOT_CONSENTED_CODE)
                },
                not_consented=int(row[NOT_CONSENTED_CODE]),
            )

    def _count_not_consented(self, columns: SampleColumns, codes: np.ndarray) -> None:
        dropped = codes == NOT_CONSENTED_CODE
        if not dropped.any():
            return
        categories = self.p.paths.category.take(columns.path_id[dropped])
        for index, n in enumerate(np.bincount(categories, minlength=len(PRIVACY_CATEGORIES))):
            if n:
                self.not_consented_by_category[PRIVACY_CATEGORIES[index]] += int(n)

    def _append_to_lake(
        self,
        units: Sequence[_Unit],
        vehicles: Sequence[Vehicle],
        vehicle_of_body: Sequence[int],
        columns: SampleColumns,
        body_index: np.ndarray,
        accepted: np.ndarray,
    ) -> None:
        if not accepted.any():
            return
        pseudonyms = self.p._pseudonyms(vehicles)
        batch_ids = [u.batch_id for u in units]
        groups: dict[tuple[str, str], list[int]] = {}
        for v, vehicle in enumerate(vehicles):
            groups.setdefault((vehicle.region, vehicle.tenant), []).append(v)
        for (region, tenant), members in groups.items():
            if len(groups) == 1:
                rows = None if accepted.all() else accepted
            else:
                in_group = np.zeros(len(vehicles), np.bool_)
                in_group[members] = True
                rows = accepted & in_group[columns.vehicle]
                if not rows.any():
                    continue
            table = assembly.lake_table(
                columns, rows, body_index, batch_ids, pseudonyms, self.p.paths
            )
            outcome = self.p.lake.append(region, tenant, table)
            self.rows_written += outcome.rows_written
            self.rows_skipped += outcome.rows_skipped

    def _refused_samples(
        self,
        units: Sequence[_Unit],
        columns: SampleColumns,
        body_index: np.ndarray,
        codes: np.ndarray,
    ) -> None:
        paths = self.p.paths
        for body, code, rows in assembly.refused_groups(codes, body_index):
            unit = units[body]
            reason: SampleReason = CODE_OUTCOMES[code]  # type: ignore[assignment]
            examples = []
            texts = columns.text.take(rows[:DETAIL_EXAMPLES]).to_pylist()
            for row, text in zip(rows[:DETAIL_EXAMPLES].tolist(), texts, strict=True):
                path_id = int(columns.path_id[row])
                value = float(columns.value[row]) if columns.value_valid[row] else None
                examples.append(
                    explain_sample(
                        paths.spec(path_id),
                        paths.path(path_id),
                        reason,
                        ts_ns=int(columns.ts_ns[row]),
                        value=value,
                        text=text,
                        ts_bounds=self.bounds,
                    )
                )
            more = f" (and {len(rows) - len(examples)} more)" if len(rows) > len(examples) else ""
            self.drafts.append(
                DeadLetterDraft(
                    received_at=self.received_at,
                    vin=unit.vehicle.vin,
                    tenant=unit.vehicle.tenant,
                    topic=unit.topic,
                    kind=unit.kind,
                    batch_id=unit.batch_id,
                    level="samples",
                    reason=reason,
                    detail=f"{len(rows)} {reason} sample(s): " + "; ".join(examples) + more,
                    sample_count=len(rows),
                    payload_format="arrow-ipc",
                    payload=assembly.refused_samples_ipc(columns, rows, paths),
                    replay_of=self.replay_of,
                )
            )

    def _ack(self, unit: _Unit, ack: Ack) -> None:
        """Desired-state acks go to the twins; acks of campaigns and commands are kept as
        vehicle events (``ack.campaign``, ``ack.command``) for the domains that sent them."""
        vehicle = unit.vehicle
        if ack.ref_kind != "desired_state":
            event = VehicleEvent(type=f"ack.{ack.ref_kind}", ts_ns=unit.sent_ns, data=ack.to_dict())
            records.add_events(
                self.session,
                tenant=vehicle.tenant,
                vin=vehicle.vin,
                batch_id=unit.batch_id,
                events=[(0, event)],
                now=self.received_at,
            )
        else:
            try:
                self.p.reported.record_acks(self.session, vehicle.vin, [ack])
            except (BadInputError, NotFoundError) as e:  # checked before any change
                self._refuse_unit(unit, f"ack refused by the twin: {e}")
                return
        self.results[unit.source] = MessageResult("stored", vehicle.vin, unit.batch_id)
        self.count(vehicle.tenant, vehicle.vin, "accepted", 1, 0)

    def _refuse_unit(self, unit: _Unit, detail: str) -> None:
        """Refuse an authentic message whose content the receiving domain refused."""
        vehicle = unit.vehicle
        self.seen = [s for s in self.seen if s[0] != unit.batch_id]
        self.results[unit.source] = MessageResult(
            "refused", vehicle.vin, unit.batch_id, "malformed", detail
        )
        if self.replay_of is not None:
            return
        self.drafts.append(
            DeadLetterDraft(
                received_at=self.received_at,
                vin=vehicle.vin,
                tenant=vehicle.tenant,
                topic=unit.topic,
                kind=unit.kind,
                batch_id=unit.batch_id,
                level="message",
                reason="malformed",
                detail=detail,
                sample_count=0,
                payload_format="envelope",
                payload=unit.raw,
            )
        )
        self.count(vehicle.tenant, vehicle.vin, "malformed", 1, 0)

    def _events(self, unit: _Unit) -> None:
        """Store the events in the window; ``vehicle.inventory`` events also go to the twins
        (in this transaction). Events outside the window, and inventories the twins refuse,
        are dead-lettered per reason; the message's other events are stored."""
        earliest, latest = self.bounds
        good: list[tuple[int, VehicleEvent]] = []
        bad: dict[str, list[tuple[int, VehicleEvent]]] = {}
        details: dict[str, str] = {}
        vehicle = unit.vehicle
        for position, event in enumerate(unit.events):
            if event.ts_ns < earliest:
                bad.setdefault("timestamp_too_old", []).append((position, event))
            elif event.ts_ns > latest:
                bad.setdefault("timestamp_in_future", []).append((position, event))
            elif event.type != INVENTORY_EVENT:
                good.append((position, event))
            elif problem := self._inventory(vehicle.vin, event):
                bad.setdefault("bad_inventory", []).append((position, event))
                details.setdefault("bad_inventory", f"event {position} ({event.type!r}): {problem}")
            else:
                good.append((position, event))
        records.add_events(
            self.session,
            tenant=vehicle.tenant,
            vin=vehicle.vin,
            batch_id=unit.batch_id,
            events=good,
            now=self.received_at,
        )
        for reason, events in bad.items():
            position, first = events[0]
            window = f"[{_iso_ns(earliest)}, {_iso_ns(latest)}]"
            cause = details.get(reason) or (
                f"event {position} ({first.type!r}) at {_iso_ns(first.ts_ns)} is outside the "
                f"accepted window {window}"
            )
            detail = f"{len(events)} event(s) with {reason}: {cause}"
            self.drafts.append(
                DeadLetterDraft(
                    received_at=self.received_at,
                    vin=vehicle.vin,
                    tenant=vehicle.tenant,
                    topic=unit.topic,
                    kind=unit.kind,
                    batch_id=unit.batch_id,
                    level="samples",
                    reason=reason,
                    detail=detail,
                    sample_count=len(events),
                    payload_format="json",
                    payload=records.events_json(events),
                    replay_of=self.replay_of,
                )
            )
            self.count(vehicle.tenant, vehicle.vin, reason, 1, len(events))
        if good:
            self.count(vehicle.tenant, vehicle.vin, "accepted", 1, len(good))
        self.results[unit.source] = MessageResult(
            "stored",
            vehicle.vin,
            unit.batch_id,
            accepted=len(good),
            refused={r: len(e) for r, e in bad.items()},
        )

    def _inventory(self, vin: str, event: VehicleEvent) -> str:
        """Route one inventory event to the twins; returns why it was refused ('' if it was
        recorded). A refused inventory changes nothing."""
        try:
            ecus = inventory_from_event(event)
            self.p.reported.record_inventory(self.session, vin, ecus)
        except (BadInputError, NotFoundError) as e:  # WireFormatError included
            return str(e)
        return ""

    # --- commit ---------------------------------------------------------------------------------
    def report(self, dead_letters: int) -> IngestReport:
        results = tuple(
            r if r is not None else MessageResult("refused", "", None) for r in self.results
        )
        return IngestReport(results, self.rows_written, self.rows_skipped, dead_letters,
                            dict(self.not_consented_by_category))

    def finish(self, *, write: bool = True) -> IngestReport:
        if not write:
            return self.report(0)
        written = records.add_dead_letters(self.session, self.drafts)
        if self.replay_of is None:
            records.bump_counters(
                self.session,
                {k: (self.counters[k], self.counter_samples[k]) for k in self.counters},
                self.received_at,
            )
        records.mark_seen(self.session, self.seen, self.received_at)
        return self.report(len(written))
