"""Telemetry ingestion: authenticate, validate and route what vehicles send.

Public surface:

- :class:`IngestPipeline` (``process(messages) -> IngestReport``), :class:`RawMessage`,
  :class:`MessageResult`, :class:`IngestReport` — the micro-batch pipeline.
- :class:`LakeWriter`, :class:`ReportedStateSink` — where accepted data goes, with the
  in-memory :class:`MemoryLake` and :class:`MemoryReportedState`.
- the reasons: :data:`DEAD_LETTER_REASONS`, :data:`OUTCOMES`, :data:`REASON_DESCRIPTIONS`.
"""

from drivetrain.cloud.ingest.envelopes import RawMessage
from drivetrain.cloud.ingest.pipeline import IngestPipeline, IngestReport, MessageResult
from drivetrain.cloud.ingest.reasons import (
    DEAD_LETTER_REASONS,
    MESSAGE_REASONS,
    OUTCOMES,
    REASON_DESCRIPTIONS,
    SAMPLE_REASONS,
    DeadLetterReason,
    Outcome,
)
from drivetrain.cloud.ingest.sinks import (
    LakeWriter,
    MemoryLake,
    MemoryReportedState,
    ReportedStateSink,
)
from drivetrain.cloud.ingest.validation import TimestampWindow

__all__ = [
    "DEAD_LETTER_REASONS",
    "MESSAGE_REASONS",
    "OUTCOMES",
    "REASON_DESCRIPTIONS",
    "SAMPLE_REASONS",
    "DeadLetterReason",
    "IngestPipeline",
    "IngestReport",
    "LakeWriter",
    "MemoryLake",
    "MemoryReportedState",
    "MessageResult",
    "Outcome",
    "RawMessage",
    "ReportedStateSink",
    "TimestampWindow",
]
