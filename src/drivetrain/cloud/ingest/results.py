"""What a micro-batch did (:class:`MessageResult`, :class:`IngestReport`), and the authentic
batch each readable message becomes on its way through the pipeline (:class:`AuthenticBatch`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest.envelopes import OpenedMessage, TelemetryBody
from drivetrain.core.wire import Ack, VehicleEvent

MessageStatus = Literal["stored", "duplicate", "refused"]


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

    ``dead_letters`` counts dead letters written; ``dead_letters_not_kept`` those the
    dead-letter rate limit counted but did not store. ``not_consented_by_category`` splits
    the samples dropped by consent by privacy category (so that a user can be told that N
    speed samples were dropped, and why). ``coarsened_by_region`` counts the accepted values
    the region's minimisation policy stored less precisely than they arrived.
    """

    results: tuple[MessageResult, ...]
    rows_written: int
    rows_skipped: int
    dead_letters: int
    dead_letters_not_kept: int = 0
    not_consented_by_category: Mapping[str, int] = field(default_factory=dict)
    coarsened_by_region: Mapping[str, int] = field(default_factory=dict)

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
class AuthenticBatch:
    """An authentic, readable batch on its way through the pipeline.

    ``source`` is its position in the micro-batch; ``raw`` the envelope as received (kept in
    a dead letter if the message is refused later); ``kind`` ``telemetry``, ``events`` or
    ``ack``, with the matching body set.
    """

    source: int
    vehicle: Vehicle
    batch_id: str
    kind: str
    topic: str
    telemetry: TelemetryBody | None = None
    events: tuple[VehicleEvent, ...] = ()
    ack: Ack | None = None
    raw: bytes = b""
    sent_ns: int = 0
    #: The collection campaign a telemetry batch names (a column of its lake rows).
    campaign: str | None = None

    @classmethod
    def of(cls, source: int, opened: OpenedMessage) -> AuthenticBatch:
        """The batch an opened message carries."""
        return cls(
            source=source,
            vehicle=opened.vehicle,
            batch_id=opened.batch_id,
            kind=opened.envelope.kind.name.lower(),
            topic=opened.raw.topic,
            telemetry=opened.telemetry,
            events=opened.events,
            ack=opened.ack,
            raw=bytes(opened.raw.payload),
            sent_ns=opened.envelope.sent_ns,
            campaign=opened.campaign,
        )
