"""Telemetry ingestion: authenticate, validate and route what vehicles send.

Public surface (everything else in this package is internal):

- the micro-batch pipeline: :class:`IngestPipeline` (``process(messages) -> IngestReport``),
  :class:`RawMessage`, :class:`MessageResult`, :class:`IngestReport`, :class:`TimestampWindow`;
- the consumer: :class:`IngestWorker` (with :class:`WorkerStats`, and the
  :class:`WorkerIdentity` it records heartbeats under) on a transport;
- where accepted data goes: :class:`LakeWriter`, :class:`ReportedStateSink`, the in-memory
  :class:`MemoryLake` and :class:`MemoryReportedState`, and :class:`TwinsReportedState`;
- reads: :func:`list_dead_letters`, :func:`get_dead_letter`, :func:`dead_letter_payload`,
  :func:`refused_items`, :func:`ingest_stats`, :func:`list_vehicle_events`,
  :func:`prune_ingest_ledger`, :func:`list_ingest_workers`; for monitoring
  :func:`open_dead_letter_counts`, :func:`outcome_totals`, :func:`last_accepted_at`;
- replay: :func:`select_for_replay`, :func:`replay_dead_letters`;
- the reasons: :data:`DEAD_LETTER_REASONS`, :data:`OUTCOMES`, :data:`REASON_DESCRIPTIONS`.
"""

from drivetrain.cloud.ingest.envelopes import RawMessage
from drivetrain.cloud.ingest.membership import (
    IngestWorkerStatus,
    WorkerIdentity,
    list_ingest_workers,
)
from drivetrain.cloud.ingest.pipeline import IngestPipeline
from drivetrain.cloud.ingest.reasons import (
    DEAD_LETTER_REASONS,
    MESSAGE_REASONS,
    OUTCOMES,
    REASON_DESCRIPTIONS,
    SAMPLE_REASONS,
    DeadLetterReason,
    Outcome,
)
from drivetrain.cloud.ingest.replay import ReplayResult, replay_dead_letters, select_for_replay
from drivetrain.cloud.ingest.results import IngestReport, MessageResult
from drivetrain.cloud.ingest.service import (
    DeadLetter,
    IngestStats,
    VehicleEventRecord,
    dead_letter_payload,
    get_dead_letter,
    ingest_stats,
    last_accepted_at,
    list_dead_letters,
    list_vehicle_events,
    open_dead_letter_counts,
    outcome_totals,
    prune_ingest_ledger,
    refused_items,
)
from drivetrain.cloud.ingest.sinks import (
    LakeWriter,
    MemoryLake,
    MemoryReportedState,
    ReportedStateSink,
    TwinsReportedState,
)
from drivetrain.cloud.ingest.validation import TimestampWindow
from drivetrain.cloud.ingest.worker import IngestWorker, WorkerStats

__all__ = [
    "DEAD_LETTER_REASONS",
    "MESSAGE_REASONS",
    "OUTCOMES",
    "REASON_DESCRIPTIONS",
    "SAMPLE_REASONS",
    "DeadLetter",
    "DeadLetterReason",
    "IngestPipeline",
    "IngestReport",
    "IngestStats",
    "IngestWorker",
    "IngestWorkerStatus",
    "LakeWriter",
    "MemoryLake",
    "MemoryReportedState",
    "MessageResult",
    "Outcome",
    "RawMessage",
    "ReplayResult",
    "ReportedStateSink",
    "TimestampWindow",
    "TwinsReportedState",
    "VehicleEventRecord",
    "WorkerIdentity",
    "WorkerStats",
    "dead_letter_payload",
    "get_dead_letter",
    "ingest_stats",
    "last_accepted_at",
    "list_dead_letters",
    "list_ingest_workers",
    "list_vehicle_events",
    "open_dead_letter_counts",
    "outcome_totals",
    "prune_ingest_ledger",
    "refused_items",
    "replay_dead_letters",
    "select_for_replay",
]
