"""The dispatcher's decisions — pure functions over states and counts, no I/O, no clock.

Per vehicle, a **delivery** moves through::

    queued ──send──▶ delivered ──ack applied──▶ succeeded
      ▲                 │ ──ack rejected──▶ failed      (retry: back to queued)
      │                 │ ──no ack in time──▶ timed_out (retry: back to queued)
      └─────────────────┴──cancel──▶ cancelled

``succeeded``, ``failed``, ``timed_out`` and ``cancelled`` are final. A retry re-queues a failed
or timed-out delivery while it has retries left; the message it sends has a new id.

A **job** is ``scheduled`` until its start time, ``running`` while it has deliveries to hand out
or to await, and ends ``finished`` (every delivery final), ``cancelled`` (by a person) or
``aborted`` (its failure rate passed the policy's threshold). A continuous job (the one behind a
collection campaign) keeps running while its owner adds deliveries, until the owner closes it.

How many vehicles a round may hand out is a token bucket: ``rate / 60`` tokens a second,
holding at most one second's worth (at least one token), so a rollout paused by a closed
maintenance window does not burst when it reopens.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

from drivetrain.cloud.commands.policy import RolloutPolicy
from drivetrain.core.errors import StateTransitionError

DeliveryState = Literal["queued", "delivered", "succeeded", "failed", "timed_out", "cancelled"]
DELIVERY_STATES: Final[tuple[DeliveryState, ...]] = get_args(DeliveryState)
FINAL_STATES: Final[frozenset[DeliveryState]] = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled"}
)
JobStatus = Literal["scheduled", "running", "finished", "cancelled", "aborted"]
JOB_STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
OPEN_JOB_STATUSES: Final[frozenset[JobStatus]] = frozenset({"scheduled", "running"})
DeliveryEvent = Literal["send", "applied", "rejected", "timeout", "retry", "cancel"]

_TRANSITIONS: Final[Mapping[tuple[DeliveryState, DeliveryEvent], DeliveryState]] = {
    ("queued", "send"): "delivered",
    ("queued", "cancel"): "cancelled",
    ("delivered", "applied"): "succeeded",
    ("delivered", "rejected"): "failed",
    ("delivered", "timeout"): "timed_out",
    ("delivered", "cancel"): "cancelled",
    ("failed", "retry"): "queued",
    ("timed_out", "retry"): "queued",
}
NO_LINK_REASON: Final = "not delivered: no vehicle link"


def next_state(state: DeliveryState, event: DeliveryEvent) -> DeliveryState:
    """The state after ``event``.

    Raises:
        StateTransitionError: ``event`` does not apply in ``state`` (names both).
    """
    after = _TRANSITIONS.get((state, event))
    if after is None:
        allowed = sorted(e for (s, e) in _TRANSITIONS if s == state)
        raise StateTransitionError(
            f"a {state} delivery cannot take {event!r}; it allows {allowed or 'nothing (final)'}"
        )
    return after


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """Deliveries of a job by state (the job's live counts)."""

    queued: int = 0
    delivered: int = 0
    succeeded: int = 0
    failed: int = 0
    timed_out: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> DeliveryCounts:
        return cls(**{s: int(counts.get(s, 0)) for s in DELIVERY_STATES})

    @property
    def total(self) -> int:
        return sum(self.to_dict().values())

    @property
    def outstanding(self) -> int:
        """Deliveries not final yet."""
        return self.queued + self.delivered

    @property
    def outcomes(self) -> int:
        """Deliveries with a vehicle outcome (succeeded, failed, timed out)."""
        return self.succeeded + self.failed + self.timed_out

    @property
    def failure_rate(self) -> float:
        """Failed and timed out over all outcomes (0 with none)."""
        return (self.failed + self.timed_out) / self.outcomes if self.outcomes else 0.0

    def to_dict(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in DELIVERY_STATES}


def abort_reason(policy: RolloutPolicy, counts: DeliveryCounts) -> str | None:
    """Why the job must abort now, or None.

    The rule holds once ``abort_min_outcomes`` deliveries have an outcome and
    (failed + timed out) / outcomes reaches ``abort_failure_rate``.
    """
    threshold = policy.abort_failure_rate
    if threshold is None or counts.outcomes < policy.abort_min_outcomes:
        return None
    if counts.failure_rate >= threshold:
        return (
            f"aborted: failure rate {counts.failure_rate:.0%} ({counts.failed} failed, "
            f"{counts.timed_out} timed out of {counts.outcomes} outcomes) reached the "
            f"threshold {threshold:.0%}"
        )
    return None


def refill_tokens(
    policy: RolloutPolicy, tokens: float, elapsed_s: float, succeeded: int
) -> float:
    """The bucket after ``elapsed_s`` seconds (see the module docstring); ``inf`` without a
    rate limit."""
    rate = policy.rate_at(succeeded)
    if rate is None:
        return math.inf
    per_s = rate / 60.0
    capacity = max(1.0, per_s)
    return min(capacity, max(0.0, tokens) + per_s * max(0.0, elapsed_s))


def release_budget(tokens: float, queued: int) -> int:
    """How many queued deliveries a round may hand out with ``tokens`` in the bucket."""
    if math.isinf(tokens):
        return queued
    return min(queued, int(tokens))


def should_retry(policy: RolloutPolicy, attempts: int) -> bool:
    """True when a delivery that failed on its ``attempts``-th attempt is sent again."""
    return attempts <= policy.max_retries


def job_status_after(
    status: JobStatus, counts: DeliveryCounts, *, continuous: bool
) -> JobStatus:
    """A running job with nothing outstanding (and not continuous) is finished."""
    if status == "running" and not continuous and counts.outstanding == 0:
        return "finished"
    return status


def check_cancellable(status: JobStatus, job_id: str) -> None:
    """Raises StateTransitionError unless ``status`` is open (scheduled or running)."""
    if status not in OPEN_JOB_STATUSES:
        raise StateTransitionError(
            f"job {job_id} is {status}; only a scheduled or running job can be cancelled"
        )


AckRefusal = Literal["unknown_ref", "wrong_kind", "not_awaiting", "wrong_version", "malformed"]


@dataclass(frozen=True, slots=True)
class AckVerdict:
    """What an acknowledgement does to its delivery: an ``event`` to apply, or a refusal."""

    event: Literal["applied", "rejected"] | None
    refusal: AckRefusal | None = None
    detail: str = ""


def judge_ack(
    *,
    vin: str,
    ref: str,
    ack_kind: str,
    status: str,
    ack_version: int | None,
    delivery_kind: str | None,
    delivery_state: DeliveryState | None,
    delivery_version: int | None,
) -> AckVerdict:
    """Decide on one acknowledgement of message ``ref`` from ``vin`` given the delivery that
    message belongs to (None fields: no delivery of that message to this vehicle).

    Refused (nothing changes): no such delivery to this vehicle (``unknown_ref`` — a forged
    reference, an ack for something the vehicle never received, or another vehicle's message);
    a kind that is not the delivery's; a delivery not awaiting an ack (``not_awaiting``: a
    replayed or late ack); a payload version other than the one sent; an unknown status.
    """
    if delivery_state is None:
        return AckVerdict(None, "unknown_ref",
                          f"ack from {vin} for message {ref}: no delivery of that message to "
                          "this vehicle (never sent to it)")
    if ack_kind != delivery_kind:
        return AckVerdict(None, "wrong_kind",
                          f"ack from {vin} for message {ref} says {ack_kind!r}; the message was "
                          f"a {delivery_kind!r}")
    if delivery_state != "delivered":
        return AckVerdict(None, "not_awaiting",
                          f"ack from {vin} for message {ref}: the delivery is {delivery_state}, "
                          "not awaiting an acknowledgement (a replayed or late ack)")
    if delivery_version is not None and ack_version != delivery_version:
        return AckVerdict(None, "wrong_version",
                          f"ack from {vin} for message {ref} names version {ack_version}; "
                          f"version {delivery_version} was sent")
    if status == "applied":
        return AckVerdict("applied")
    if status == "rejected":
        return AckVerdict("rejected")
    return AckVerdict(None, "malformed", f"ack from {vin} for message {ref}: status {status!r}")
