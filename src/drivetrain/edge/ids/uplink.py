"""Security events on their way to the cloud: as vehicle events (type ``security.ids``, sent
through the agent's signed event uplink like any other event), and rate-limited per signature.

A detector under attack can raise thousands of events a minute; the uplink must not drown, yet
no *distinct* event may be lost. :class:`EventLimiter` gives each signature (rule and CAN id)
its own token bucket: within budget an event passes as it is; over budget it is folded into
one pending aggregate per signature (count summed, time span widened, best score kept) that is
released as soon as that signature has a token again — or by :meth:`EventLimiter.flush`. A
flood of one signature therefore costs at most ``burst`` events plus one per ``1/rate_per_s``
seconds, and every other signature still gets through at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from drivetrain.core.wire import VehicleEvent
from drivetrain.edge.ids.events import SecurityEvent

SECURITY_EVENT_TYPE = "security.ids"


def severity_of(event: SecurityEvent) -> Literal["medium", "high"]:
    """How urgent an event is: unknown ids and broken counters are plain attacks on the bus."""
    if event.sensor in ("unknown_id", "counter", "timing") or event.count >= 50:
        return "high"
    return "medium"


def to_vehicle_event(event: SecurityEvent, *, epoch_offset_s: float = 0.0) -> VehicleEvent:
    """The vehicle event that carries ``event`` (timestamps in Unix ns: the bus clock plus
    ``epoch_offset_s``)."""
    data = event.to_dict()
    return VehicleEvent(
        type=SECURITY_EVENT_TYPE,
        ts_ns=round((event.first_s + epoch_offset_s) * 1e9),
        severity=severity_of(event),
        data=data,
    )


@dataclass
class _Bucket:
    tokens: float
    at_s: float
    pending: SecurityEvent | None = None


class EventLimiter:
    """Per-signature token buckets with aggregation of what is over budget."""

    def __init__(self, *, rate_per_s: float = 1.0, burst: int = 5) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"rate_per_s must be > 0 and burst >= 1, got {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def offer(self, events: list[SecurityEvent], now_s: float) -> list[SecurityEvent]:
        """The events to send now (in order), given newly raised ``events`` at ``now_s``."""
        out: list[SecurityEvent] = []
        for event in events:
            bucket = self._buckets.setdefault(event.signature, _Bucket(float(self.burst), now_s))
            self._refill(bucket, now_s)
            if bucket.pending is not None:
                bucket.pending = _merge(bucket.pending, event)
            elif bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                out.append(event)
            else:
                bucket.pending = event
        out.extend(self._release(now_s))
        return out

    def _refill(self, bucket: _Bucket, now_s: float) -> None:
        bucket.tokens = min(float(self.burst), bucket.tokens + (now_s - bucket.at_s) * self.rate_per_s)
        bucket.at_s = max(bucket.at_s, now_s)

    def _release(self, now_s: float) -> list[SecurityEvent]:
        out = []
        for bucket in self._buckets.values():
            self._refill(bucket, now_s)
            if bucket.pending is not None and bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                out.append(bucket.pending)
                bucket.pending = None
        return out

    def flush(self) -> list[SecurityEvent]:
        """Every pending aggregate, regardless of budget (at shutdown)."""
        out = [b.pending for b in self._buckets.values() if b.pending is not None]
        for b in self._buckets.values():
            b.pending = None
        return out


def _merge(a: SecurityEvent, b: SecurityEvent) -> SecurityEvent:
    return replace(
        a,
        count=a.count + b.count,
        first_s=min(a.first_s, b.first_s),
        last_s=max(a.last_s, b.last_s),
        score=max(a.score, b.score),
    )
