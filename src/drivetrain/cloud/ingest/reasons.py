"""Why ingestion refuses data: the closed set of reasons, and the outcomes it counts.

A payload is judged at two levels (see docs/ingest.md):

- **message level** — the envelope as a whole cannot be trusted or read. The whole payload is
  dead-lettered with its raw bytes (within caps): ``malformed``, ``too_large``,
  ``unknown_vehicle``, ``retired_vehicle``, ``bad_signature``, ``unknown_session``,
  ``bad_mac``, ``replayed_seq`` (vehicle sessions, docs/ingest.md); and ``processing_error`` for a
  message the pipeline failed on again and again (a poison message, set aside so the worker
  moves on; replayable after a fix).
- **sample level** — one sample of an authentic batch breaks a rule. Only that sample is
  dead-lettered; the valid samples of the batch proceed: ``unknown_path``, ``wrong_type``,
  ``out_of_range``, ``timestamp_too_old``, ``timestamp_in_future``; for events also
  ``bad_inventory`` (a ``vehicle.inventory`` event the twins cannot take) and
  ``bad_entitlements`` (an ``entitlements.changed`` event whose features do not read) and
  ``bad_consent`` (a ``privacy.consent.withdrawn`` or ``privacy.sync`` event that does not
  read).

``not_consented`` is not a fault: the vehicle's consent does not cover the signal's privacy
category, so the value is dropped by policy at the door and counted, never written anywhere.
A sample has exactly one reason: the first that applies in :data:`SAMPLE_REASONS` order.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard, get_args

MessageReason = Literal[
    "malformed",
    "too_large",
    "unknown_vehicle",
    "retired_vehicle",
    "bad_signature",
    "unknown_session",
    "bad_mac",
    "replayed_seq",
    "processing_error",
]
SampleReason = Literal[
    "unknown_path", "wrong_type", "out_of_range", "timestamp_too_old", "timestamp_in_future"
]
#: Reasons only events have (the timestamp reasons apply to events too).
EventReason = Literal["bad_inventory", "bad_entitlements", "bad_consent"]
DeadLetterReason = Literal[MessageReason, SampleReason, EventReason]
#: What the per-vehicle counters count: every dead-letter reason, plus ``not_consented``
#: (dropped by policy), ``accepted`` (stored), ``duplicate`` (a re-delivered batch) and
#: ``dead_letter_not_kept`` (a dead letter past the rate limit: counted under its reason too,
#: not stored).
Outcome = Literal[
    "accepted", "duplicate", "not_consented", DeadLetterReason, "dead_letter_not_kept"
]

MESSAGE_REASONS: Final[tuple[MessageReason, ...]] = get_args(MessageReason)
#: Sample reasons in precedence order: a sample gets the first one that applies.
SAMPLE_REASONS: Final[tuple[SampleReason, ...]] = get_args(SampleReason)
EVENT_REASONS: Final[tuple[EventReason, ...]] = get_args(EventReason)
DEAD_LETTER_REASONS: Final[tuple[DeadLetterReason, ...]] = get_args(DeadLetterReason)
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)

REASON_DESCRIPTIONS: Final[dict[Outcome, str]] = {
    "accepted": "stored in the lake (and the twin's reported state)",
    "duplicate": "a batch id already ingested (re-delivery); skipped, never stored twice",
    "not_consented": "the vehicle's consent does not cover the signal's privacy category; "
    "dropped at ingest, never written",
    "malformed": "the envelope or its body cannot be parsed (truncated, garbled, wrong kind "
    "for the topic); the detail quotes the parser",
    "too_large": "the message, or what its body declares (samples, dictionary entries, "
    "decompressed bytes), exceeds the ingest caps; refused before decompressing",
    "unknown_vehicle": "the envelope names a VIN the fleet registry does not know",
    "retired_vehicle": "the vehicle is retired; its messages are refused",
    "bad_signature": "the signature does not verify with the vehicle's registered key (or "
    "the envelope names a session another vehicle, or another key of it, opened; or it is an "
    "events or ack envelope MAC'd instead of signed)",
    "unknown_session": "the envelope is MAC'd under a session no ingested session_open "
    "opened (raw bytes kept: replayable once its session_open is ingested)",
    "bad_mac": "the envelope's HMAC does not verify with its session's key",
    "replayed_seq": "the envelope's MAC verifies but its sequence number was already "
    "accepted in its session, or is below the session's replay window",
    "processing_error": "the pipeline failed on this message on every attempt (a fault on "
    "our side, not the sender's); set aside with its raw bytes so the others proceed, "
    "replayable once fixed",
    "unknown_path": "the sample's VSS path is not in the signal catalog",
    "wrong_type": "the value does not fit the signal's VSS datatype (a string for a number, "
    "a fraction for an integer, 2 for a boolean, NaN, both or neither of value/text)",
    "out_of_range": "the value is outside the signal's min/max or not one of its allowed values",
    "timestamp_too_old": "measured before the sanity window: before 2000-01-01 or older than "
    "the maximum sample age (ingest_max_sample_age_s) at receipt",
    "timestamp_in_future": "measured later than the receiver's clock plus the allowed skew "
    "(ingest_max_clock_ahead_s)",
    "dead_letter_not_kept": "a dead letter over the per-sender rate limit "
    "(ingest_dead_letters_per_minute): counted under its reason, not stored",
    "bad_inventory": "a vehicle.inventory event that is malformed (not a list of ECUs, too many "
    "ECUs, a name twice) or that the twin refuses (a bad ECU name, hardware id or software "
    "version); the other events of the message are stored",
    "bad_entitlements": "an entitlements.changed event whose features list is malformed "
    "(not a list, a feature twice, a field of the wrong type or range); the twin's reported "
    "state is not changed, the other events of the message are stored",
    "bad_consent": "a privacy.consent.withdrawn event (consent withdrawn in the car) or a "
    "privacy.sync event (what the car holds) that does not read (an unknown category or field, a VIN in its data, a bad version); the consent "
    "is not changed, the other events of the message are stored",
}

#: Small integer codes for the vectorised validator: 0 is "accepted".
ACCEPTED_CODE: Final = 0
SAMPLE_REASON_CODES: Final[dict[SampleReason, int]] = {
    reason: i + 1 for i, reason in enumerate(SAMPLE_REASONS)
}
NOT_CONSENTED_CODE: Final = len(SAMPLE_REASONS) + 1
#: Code → outcome name, indexable by the codes above.
CODE_OUTCOMES: Final[tuple[Outcome, ...]] = ("accepted", *SAMPLE_REASONS, "not_consented")


def is_dead_letter_reason(value: object) -> TypeGuard[DeadLetterReason]:
    """True for one of the dead-letter reasons (:data:`DEAD_LETTER_REASONS`)."""
    return isinstance(value, str) and value in DEAD_LETTER_REASONS


def is_outcome(value: object) -> TypeGuard[Outcome]:
    """True for a counted outcome (a dead-letter reason, accepted, duplicate, not_consented)."""
    return isinstance(value, str) and value in OUTCOMES
