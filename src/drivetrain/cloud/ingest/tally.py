"""What one micro-batch decided, gathered before it is written: a result per message, the
dead letters, the per-vehicle counters and the ledger rows of the batches ingested.

:class:`Tally` is the one place the routing steps record outcomes; ``finish`` writes it all
in the micro-batch's transaction. A replay (``replay_of`` set) reports, but writes no counters
and no message-level dead letters (the dead letter being replayed stays as it is).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from drivetrain.cloud.ingest import records
from drivetrain.cloud.ingest.dead_letter_gate import DeadLetterGate
from drivetrain.cloud.ingest.envelopes import RawMessage, RejectedMessage
from drivetrain.cloud.ingest.records import DeadLetterDraft
from drivetrain.cloud.ingest.results import AuthenticBatch, IngestReport, MessageResult


class Tally:
    """Outcomes of one micro-batch of ``size`` messages (plus replayed batches)."""

    def __init__(self, size: int, received_at: datetime, replay_of: int | None) -> None:
        self.received_at = received_at
        self.replay_of = replay_of
        self.results: list[MessageResult | None] = [None] * size
        self.drafts: list[DeadLetterDraft] = []
        self.counters: Counter[tuple[str, str, str]] = Counter()
        self.counter_samples: Counter[tuple[str, str, str]] = Counter()
        self.seen: list[tuple[str, str, str]] = []
        self.rows_written = 0
        self.rows_skipped = 0
        self.not_consented_by_category: Counter[str] = Counter()
        #: Accepted values the region's minimisation policy coarsened, per region.
        self.coarsened_by_region: Counter[str] = Counter()

    def count(
        self, tenant: str | None, vin: str, outcome: str, messages: int, samples: int
    ) -> None:
        """Add to the counter of ``(tenant, vin, outcome)``."""
        key = (tenant or "", vin, outcome)
        self.counters[key] += messages
        self.counter_samples[key] += samples

    def result(self, source: int, result: MessageResult) -> None:
        self.results[source] = result

    def mark_fresh(self, batch: AuthenticBatch) -> None:
        """``batch`` is new: its id joins the ledger when the micro-batch commits."""
        self.seen.append((batch.batch_id, batch.vehicle.vin, batch.kind))

    def add_dead_letter(self, draft: DeadLetterDraft) -> None:
        self.drafts.append(draft)

    # --- message level ------------------------------------------------------------------------
    def refuse_messages(self, refused: Sequence[tuple[int, RejectedMessage]]) -> None:
        """Messages refused as a whole when opened: dead-lettered with their raw bytes."""
        for i, message in refused:
            self.results[i] = MessageResult(
                "refused", message.vin, message.batch_id, message.reason, message.detail
            )
            if self.replay_of is not None:
                continue
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
                    verified=message.verified,
                )
            )
            self.count(message.tenant, message.vin, message.reason, 1, 0)

    def refuse_batch(self, batch: AuthenticBatch, detail: str) -> None:
        """Refuse an authentic message whose content the receiving domain refused
        (``malformed``); its batch id stays out of the ledger."""
        vehicle = batch.vehicle
        self.seen = [s for s in self.seen if s[0] != batch.batch_id]
        self.results[batch.source] = MessageResult(
            "refused", vehicle.vin, batch.batch_id, "malformed", detail
        )
        if self.replay_of is not None:
            return
        self.drafts.append(
            DeadLetterDraft(
                received_at=self.received_at,
                vin=vehicle.vin,
                tenant=vehicle.tenant,
                topic=batch.topic,
                kind=batch.kind,
                batch_id=batch.batch_id,
                level="message",
                reason="malformed",
                detail=detail,
                sample_count=0,
                payload_format="envelope",
                payload=batch.raw,
                verified=True,
            )
        )
        self.count(vehicle.tenant, vehicle.vin, "malformed", 1, 0)

    def set_aside(
        self,
        raw: RawMessage,
        *,
        vin: str,
        batch_id: str | None,
        kind: str,
        tenant: str | None,
        detail: str,
    ) -> None:
        """A message the pipeline kept failing on: dead-lettered as ``processing_error`` with
        its raw bytes whole (at most ``ingest_max_message_bytes``), so it can be replayed
        once the fault is fixed."""
        self.results[0] = MessageResult("refused", vin, batch_id, "processing_error", detail)
        self.drafts.append(
            DeadLetterDraft(
                received_at=self.received_at,
                vin=vin,
                tenant=tenant,
                topic=raw.topic,
                kind=kind,
                batch_id=batch_id,
                level="message",
                reason="processing_error",
                detail=detail,
                sample_count=0,
                payload_format="envelope",
                payload=bytes(raw.payload),
                verified=True,  # kept whole: replayable after the fix
            )
        )
        self.count(tenant, vin, "processing_error", 1, 0)

    # --- commit ---------------------------------------------------------------------------------
    def report(self, dead_letters: int, not_kept: int = 0) -> IngestReport:
        results = tuple(
            r if r is not None else MessageResult("refused", "", None) for r in self.results
        )
        return IngestReport(results, self.rows_written, self.rows_skipped, dead_letters, not_kept,
                            dict(self.not_consented_by_category),
                            dict(self.coarsened_by_region))

    def finish(
        self,
        session: Session,
        *,
        write: bool = True,
        gate: DeadLetterGate | None = None,
        unverified_max_bytes: int | None = None,
    ) -> IngestReport:
        """Write the dead letters, counters and ledger rows in ``session``; the report.

        ``gate`` rate-limits the dead letters per claimed VIN (or topic): those it refuses
        are counted as ``dead_letter_not_kept`` and not stored. ``unverified_max_bytes`` caps
        the raw bytes kept of messages whose signature did not verify.
        """
        if not write:
            return self.report(0)
        drafts = self.drafts
        not_kept = 0
        if gate is not None and self.replay_of is None:
            drafts = []
            for draft in self.drafts:
                if gate.admit(draft.vin or f"topic:{draft.topic}", draft.reason):
                    drafts.append(draft)
                else:
                    not_kept += 1
                    self.count(draft.tenant, draft.vin, "dead_letter_not_kept", 1, 0)
        written = records.add_dead_letters(
            session, drafts, unverified_max_bytes=unverified_max_bytes
        )
        if self.replay_of is None:
            records.bump_counters(
                session,
                {k: (self.counters[k], self.counter_samples[k]) for k in self.counters},
                self.received_at,
            )
        records.mark_seen(session, self.seen, self.received_at)
        return self.report(len(written), not_kept)
