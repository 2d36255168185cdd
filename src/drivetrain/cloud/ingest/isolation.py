"""Keeping one bad message from stalling a worker: which failures to wait out, and how to
find the message a micro-batch keeps failing on.

A micro-batch can fail for two kinds of reasons:

- **the platform is unavailable** — the state database cannot be reached or is locked, the
  lake's disk fails (:func:`is_transient`). Nothing is wrong with the messages: the worker
  waits and retries, for as long as it takes, never acknowledging and never dropping them.
- **something in the batch** makes the pipeline fail every time (a value a database refuses,
  a custom catalog the lake disagrees with, a bug). Retrying cannot help. After
  ``max_attempts`` the batch is split in halves, each tried on its own (bisection), so the
  valid messages are stored; a single message that still fails ``max_attempts`` times is set
  aside as a ``processing_error`` dead letter with its raw bytes, replayable once fixed.

:func:`settle` is that loop, independent of where messages come from; the worker drives it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, Generic, TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from drivetrain.core.errors import StorageError, TransportError

_log = logging.getLogger("drivetrain.ingest")

RETRY_MIN_S: Final = 0.2
RETRY_MAX_S: Final = 10.0
_UNAVAILABLE: Final = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    OSError,
    TransportError,
)

M = TypeVar("M")
R = TypeVar("R")


def is_transient(error: BaseException) -> bool:
    """True when ``error`` says the platform is unavailable (database unreachable or locked,
    disk or file failure), judged by the error and its causes; such a failure is retried
    without limit. A ``StorageError`` or ``TransportError`` that names no cause counts as
    unavailable too. Everything else is the batch's own failure."""
    if isinstance(error, StorageError | TransportError) and (
        error.__cause__ is None and error.__context__ is None
    ):
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, _UNAVAILABLE) and not isinstance(current, UnicodeError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class Failure:
    """The last error of a part that kept failing, and how often it was tried."""

    error: BaseException
    attempts: int


@dataclass
class SettleStats(Generic[R]):
    """What :func:`settle` did: the reports of committed parts, and its failed attempts."""

    reports: list[R]
    failures: int = 0
    set_aside: int = 0


def settle(
    messages: Sequence[M],
    process: Callable[[Sequence[M]], R],
    set_aside: Callable[[M, Failure], R],
    *,
    max_attempts: int,
    stop: threading.Event,
    on_failure: Callable[[BaseException], None] = lambda e: None,
) -> SettleStats[R] | None:
    """Process ``messages`` until every one is committed or set aside (see the module
    docstring); None when ``stop`` was set while a failure was being waited out (then not
    everything is settled, and nothing may be acknowledged).

    ``process`` commits a part and returns its report; ``set_aside`` dead-letters one message
    that kept failing and returns its report (it may fail transiently too: retried).
    """
    stats: SettleStats[R] = SettleStats([])
    parts: list[tuple[Sequence[M], int]] = [(messages, max_attempts)]
    while parts:
        part, attempts = parts.pop(0)
        outcome = _attempt(partial(process, part), attempts, stop, stats, on_failure)
        if outcome is None:
            return None
        if not isinstance(outcome, Failure):
            stats.reports.append(outcome)
            continue
        if len(part) > 1:
            middle = len(part) // 2
            _log.warning(
                "micro-batch of %d messages failed %d times (%s); trying its halves apart",
                len(part),
                outcome.attempts,
                outcome.error,
            )
            # A half of one message gets every attempt before it is set aside.
            halves = [(part[:middle], 1), (part[middle:], 1)]
            parts[:0] = [(h, max_attempts if len(h) == 1 else n) for h, n in halves]
            continue
        failure = outcome
        aside = _attempt(partial(set_aside, part[0], failure), None, stop, stats, on_failure)
        if aside is None:
            return None
        if isinstance(aside, Failure):  # pragma: no cover - _attempt(None) never gives up
            raise aside.error
        stats.reports.append(aside)
        stats.set_aside += 1
    return stats


def _attempt(
    run: Callable[[], R],
    attempts: int | None,
    stop: threading.Event,
    stats: SettleStats[R],
    on_failure: Callable[[BaseException], None],
) -> R | Failure | None:
    """``run()`` until it succeeds; a transient failure is retried without limit, another one
    up to ``attempts`` times (None: without limit). None when stopped while waiting."""
    delay = RETRY_MIN_S
    failed = 0
    while True:
        try:
            return run()
        except Exception as e:  # noqa: BLE001 - every failure is retried, isolated or reported
            stats.failures += 1
            on_failure(e)
            transient = is_transient(e)
            if not transient:
                failed += 1
                if attempts is not None and failed >= attempts:
                    return Failure(e, failed)
            _log.error(
                "ingest attempt failed (%s; will retry in %.1f s): %s",
                "platform unavailable" if transient else f"attempt {failed}",
                delay,
                e,
                exc_info=e,
            )
            if stop.wait(delay):
                return None
            delay = min(RETRY_MAX_S, delay * 2)
