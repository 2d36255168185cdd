"""A sliding-window limit of events per key (token requests per address, failed
authentications per client): pure, with the clock passed in, so tests need no sleeping."""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Final

from drivetrain.core.errors import RateLimitedError

#: Keys remembered at most; beyond it the least recently used are forgotten, so a flood of
#: new keys (addresses, invented client ids) cannot grow memory without bound.
MAX_KEYS: Final = 10_000


class SlidingWindowLimit:
    """At most ``limit`` events per key within any ``window_s`` seconds (thread-safe)."""

    def __init__(self, limit: int, window_s: float, *, what: str,
                 max_keys: int = MAX_KEYS) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"limit={limit}, window_s={window_s}; expected positive values")
        self.limit, self.window_s, self.what = limit, window_s, what
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window_s:
            events.popleft()
        self._events[key] = events  # re-inserted: dict order is least recently used first
        while len(self._events) > self._max_keys:
            del self._events[next(iter(self._events))]
        return events

    def _refuse_if_full(self, key: str, events: deque[float], now: float) -> None:
        if len(events) >= self.limit:
            retry = max(1, math.ceil(events[0] + self.window_s - now))
            raise RateLimitedError(
                f"too many {self.what} from {key!r}: at most {self.limit} per "
                f"{self.window_s:g} s; retry in {retry} s", retry_after_s=retry,
            )

    def check(self, key: str, now: float) -> None:
        """Raise :class:`RateLimitedError` when ``key`` already had ``limit`` events in the
        window ending at ``now`` (seconds, monotonic); record nothing."""
        with self._lock:
            self._refuse_if_full(key, self._recent(key, now), now)

    def record(self, key: str, now: float) -> None:
        """Count one event of ``key`` at ``now``."""
        with self._lock:
            self._recent(key, now).append(now)

    def hit(self, key: str, now: float) -> None:
        """:meth:`check`, then :meth:`record` (raises before counting when over the limit)."""
        with self._lock:
            events = self._recent(key, now)
            self._refuse_if_full(key, events, now)
            events.append(now)
