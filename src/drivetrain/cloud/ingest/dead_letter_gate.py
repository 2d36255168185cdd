"""The dead-letter rate limit: how many dead letters one sender may make a worker store.

Any payload published on a vehicle's topic becomes a dead letter when it is refused, so an
unauthenticated sender could otherwise fill the state database. :class:`DeadLetterGate` keeps
a token bucket per key (the claimed VIN, or the topic when none can be read): ``per_minute``
dead letters, refilled continuously. Past it, dead letters are counted (outcome
``dead_letter_not_kept``) and not stored. Each worker process keeps its own buckets, so N
workers store at most N times the rate; the buckets are bounded in number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

#: Buckets kept before the oldest half is forgotten (a sender inventing VINs must not grow
#: the worker's memory without bound).
MAX_BUCKETS: Final = 100_000


class DeadLetterGate:
    """Token buckets of ``per_minute`` dead letters per key (see the module docstring)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be >= 1, got {per_minute}")
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def admit(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        admitted = tokens >= 1.0
        if len(self._buckets) >= MAX_BUCKETS:
            for old in list(self._buckets)[: MAX_BUCKETS // 2]:  # least recently used first
                del self._buckets[old]
        self._buckets[key] = (tokens - 1.0 if admitted else tokens, now)
        return admitted
