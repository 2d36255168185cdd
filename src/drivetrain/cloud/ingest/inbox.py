"""``Inbox``: the bounded hand-over from the transport's delivery thread to the ingest worker.

A ``queue.Queue`` takes a lock and signals a condition for every put and every get: a few
microseconds a message on both threads. Here a put is a ``deque.append`` (atomic) and the
condition is signalled only when the taker is actually waiting; the taker drains many items
per call. It stays bounded: a full inbox makes ``put`` wait, which is the back-pressure to
the transport (and so to the broker's receive window).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """A bounded multi-producer, single-consumer queue of ``T``.

    Args:
        maxsize: items held at most (>= 1).
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._changed = threading.Condition(threading.Lock())
        # set under the condition's lock by a side about to wait; the other side signals
        # only then (both re-check the deque under the lock, so no wake-up is lost)
        self._taker_waiting = False
        self._putters_waiting = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T, timeout_s: float) -> bool:
        """Add ``item``, waiting up to ``timeout_s`` for room; False when there was none."""
        items = self._items
        if len(items) >= self.maxsize:
            deadline = time.monotonic() + timeout_s
            with self._changed:
                self._putters_waiting += 1  # before the check: a take after it signals
                try:
                    while len(items) >= self.maxsize:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        self._changed.wait(remaining)
                finally:
                    self._putters_waiting -= 1
        items.append(item)
        if self._taker_waiting:
            with self._changed:
                self._changed.notify_all()
        return True

    def take(self, most: int, timeout_s: float) -> list[T]:
        """Up to ``most`` items, oldest first, waiting up to ``timeout_s`` for the first."""
        items = self._items
        if not items and timeout_s > 0:
            with self._changed:
                self._taker_waiting = True  # before the check: a put after it signals
                try:
                    if not items:
                        self._changed.wait(timeout_s)
                finally:
                    self._taker_waiting = False
        taken: list[T] = []
        while items and len(taken) < most:
            taken.append(items.popleft())
        if taken and self._putters_waiting:
            with self._changed:
                self._changed.notify_all()
        return taken
