"""The caps ingestion applies to what untrusted senders can make it read and keep."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivetrain.core.settings import Settings
from drivetrain.core.wire import IpcLimits


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Caps on messages, telemetry bodies and dead letters (see the ``ingest_*`` settings).

    Attributes:
        max_message_bytes: a larger message is ``too_large``, unread.
        body: caps on what a telemetry body declares (rows, dictionary entries, decompressed
            bytes), checked before decompressing.
        dead_letter_max_bytes: raw bytes kept of a message whose signature did not verify.
        dead_letters_per_minute: dead letters stored per claimed VIN (or topic) and minute.
        max_attempts: attempts at a failing micro-batch before its poison is isolated.
    """

    max_message_bytes: int = 1024 * 1024
    body: IpcLimits = field(default_factory=IpcLimits)
    dead_letter_max_bytes: int = 64 * 1024
    dead_letters_per_minute: int = 60
    max_attempts: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            max_message_bytes=settings.ingest_max_message_bytes,
            body=IpcLimits(
                max_rows=settings.ingest_max_samples_per_message,
                max_dictionary_entries=settings.ingest_max_samples_per_message,
                max_decompressed_bytes=settings.ingest_max_decompressed_bytes,
            ),
            dead_letter_max_bytes=settings.ingest_dead_letter_max_bytes,
            dead_letters_per_minute=settings.ingest_dead_letters_per_minute,
            max_attempts=settings.ingest_max_attempts,
        )
