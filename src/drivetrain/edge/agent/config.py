"""The agent's tuning (``AgentConfig``), its counters (``AgentStats``) and message priorities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from drivetrain.core.wire import MessageKind
from drivetrain.edge.downlink import DEFAULT_FRESHNESS_S
from drivetrain.edge.uplink import UplinkStats

#: Priorities in the buffer (0-9; lower is evicted first). Telemetry takes its campaign's.
ACK_PRIORITY: Final = 9
REPORT_PRIORITY: Final = 8
EVENT_PRIORITY: Final = 8
#: A session_open: the last to go, as the telemetry MAC'd under it cannot be verified without it.
SESSION_PRIORITY: Final = 9


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
        unmetered_link: whether the link starts unmetered (``link: unmetered`` upload
            partitions wait for one; ``EdgeAgent.unmetered_link`` changes it at run time).
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
    unmetered_link: bool = False


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
