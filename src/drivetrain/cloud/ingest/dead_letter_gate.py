"""The dead-letter rate limit: how many dead letters one sender may make a worker store.

Any payload published on a vehicle's topic becomes a dead letter when it is refused, so an
unauthenticated sender could otherwise fill the state database. :class:`DeadLetterGate` keeps
a token bucket per key (the claimed VIN, or the topic when none can be read): ``per_minute``
dead letters, refilled continuously. Past it, dead letters are counted (outcome
``dead_letter_not_kept``) and not stored. Each worker process keeps its own buckets, so N
workers store at most N times the rate; the buckets are bounded in number.

A reason can have an allowance of its own, in buckets of its own (``per_minute_by_reason``):
``unknown_session`` envelopes are data a vehicle's session will authenticate once its
``session_open`` is stored (they are replayed then), so a vehicle flushing a backlog right
after opening a session must not lose them to the ordinary limit; their allowance is the
session's replay window, the most of one session that could still be replayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

#: Buckets kept before the oldest half is forgotten (a sender inventing VINs must not grow
#: the worker's memory without bound).
MAX_BUCKETS: Final = 100_000


class DeadLetterGate:
    """Token buckets of ``per_minute`` dead letters per key (see the module docstring)."""

    def __init__(
        self,
        per_minute: int,
        *,
        per_minute_by_reason: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        by_reason = dict(per_minute_by_reason or {})
        for name, limit in {"per_minute": per_minute, **by_reason}.items():
            if limit < 1:
                raise ValueError(f"{name} must be >= 1, got {limit}")
        self.per_minute = per_minute
        self._by_reason = by_reason
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def admit(self, key: str, reason: str = "") -> bool:
        """Take one token from ``key``'s bucket (its bucket for ``reason`` where that reason
        has an allowance of its own); False when it is empty."""
        limit = self._by_reason.get(reason)
        if limit is None:
            limit = self.per_minute
        else:
            key = f"{reason}\0{key}"
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(limit), now))
        tokens = min(float(limit), tokens + (now - at) * limit / 60.0)
        admitted = tokens >= 1.0
        if len(self._buckets) >= MAX_BUCKETS:
            for old in list(self._buckets)[: MAX_BUCKETS // 2]:  # least recently used first
                del self._buckets[old]
        self._buckets[key] = (tokens - 1.0 if admitted else tokens, now)
        return admitted
