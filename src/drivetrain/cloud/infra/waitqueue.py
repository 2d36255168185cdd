"""A bounded queue that publisher threads fill and consumers drain by waiting either in a
thread (:meth:`WaitQueue.get_batch`) or on an asyncio event loop
(:meth:`WaitQueue.next_batch`).

The asynchronous wait holds no thread: an HTTP event stream waiting for the next change costs
a coroutine, not one of the server's worker threads, so hundreds of open streams cannot starve
the ordinary requests that need those threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class WaitQueue(Generic[T]):
    """At most ``max_queue`` items; when full the oldest is dropped and counted in
    ``overflowed``. Thread-safe; :meth:`close` releases every waiter."""

    def __init__(self, max_queue: int) -> None:
        self._queue: deque[T] = deque()
        self._max_queue = max_queue
        self._ready = threading.Condition()
        self._loop_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.overflowed = 0
        self.active = True

    def _offer(self, item: T) -> None:
        with self._ready:
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.overflowed += 1
            self._queue.append(item)
            self._notify()

    def _notify(self) -> None:
        # Called holding ``_ready``.
        self._ready.notify_all()
        for loop, event in self._loop_waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed; its waiter is gone with it
                pass

    def _drain(self, max_items: int) -> list[T]:
        batch: list[T] = []
        while self._queue and len(batch) < max_items:
            batch.append(self._queue.popleft())
        return batch

    def get_batch(self, timeout_s: float, max_items: int = 1000) -> list[T]:
        """Wait (blocking this thread) up to ``timeout_s`` for items; return those waiting
        (at most ``max_items``)."""
        with self._ready:
            if not self._queue and self.active:
                self._ready.wait(timeout_s)
            return self._drain(max_items)

    async def next_batch(self, timeout_s: float, max_items: int = 1000) -> list[T]:
        """Wait on the running event loop, without a thread, up to ``timeout_s`` for items;
        return those waiting (at most ``max_items``)."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._ready:
            if self._queue or not self.active:
                return self._drain(max_items)
            self._loop_waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._ready:
                self._loop_waiters.discard(waiter)
        with self._ready:
            return self._drain(max_items)

    def wake(self) -> None:
        """Release every waiting :meth:`get_batch` and :meth:`next_batch`."""
        with self._ready:
            self._notify()
