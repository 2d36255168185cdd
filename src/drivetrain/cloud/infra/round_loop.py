"""``RoundLoop``: the background thread a runner does its rounds on, woken by the status bus.

The campaign runner and the commerce runner both repeat a round (``run_once``) every
``poll_interval_s`` and at once when their domain publishes a status change; a failed round is
counted and logged, and the next one runs as usual. This is that loop, written once.
"""

from __future__ import annotations

import logging
import threading
from typing import Self

from drivetrain.cloud.infra.bus import status_bus
from drivetrain.cloud.infra.database import Database
from drivetrain.core.errors import DrivetrainError

log = logging.getLogger(__name__)


class RoundLoop:
    """Base of a runner: subclasses define ``run_once()``; ``start()``/``stop()`` run it on a
    thread named ``thread_name``, woken early by a status event of ``domain``.

    Attributes:
        rounds: rounds run (a subclass's ``run_once`` counts them).
        errors: rounds that failed with a ``DrivetrainError`` (logged, then the loop goes on).
    """

    def __init__(self, database: Database, *, domain: str, thread_name: str,
                 poll_interval_s: float) -> None:
        self.database = database
        self.poll_interval_s = poll_interval_s
        self.rounds = 0
        self.errors = 0
        self._domain = domain
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        raise NotImplementedError

    def start(self) -> Self:
        """Run rounds on a background thread until ``stop()`` (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self._thread_name,
                                            daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        wake = status_bus(self.database.engine).subscribe(tenant=None, domains=(self._domain,))
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except DrivetrainError as e:
                    self.errors += 1
                    log.warning("%s round failed: %s", self._domain, e)
                wake.get_batch(self.poll_interval_s)
        finally:
            wake.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread after its current round; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
