"""Fleet-registry lookups for ingestion, with a short cache of hits and misses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle, get_vehicle, get_vehicles
from drivetrain.core.errors import BadInputError, NotFoundError


class VehicleDirectory:
    """Registry lookups with a short cache (hits and misses), so a micro-batch of many
    messages from few vehicles costs few queries. ``ttl_s`` bounds how long a retirement,
    key rotation or late registration takes to be seen (0: always ask).

    :meth:`prefetch` answers a whole micro-batch's VINs with one query (per 500 VINs not
    cached) instead of one per VIN.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, tuple[Vehicle | None, float]] = {}

    def prefetch(self, session: Session, vins: Iterable[str]) -> dict[str, Vehicle | None]:
        """The answer for each of ``vins`` (None: not registered, or not a VIN): fresh cached
        answers as they are, the others asked in one query per 500 and cached."""
        now = self._clock()
        answers: dict[str, Vehicle | None] = {}
        missing: set[str] = set()
        for vin in vins:
            cached = self._cache.get(vin)
            if cached is not None and cached[1] > now:
                answers[vin] = cached[0]
            else:
                missing.add(vin)
        if not missing:
            return answers
        found = get_vehicles(session, missing)
        if self._ttl_s > 0 and len(self._cache) + len(missing) > self._max_entries:
            self._cache.clear()
        expires = now + self._ttl_s
        for vin in missing:
            vehicle = answers[vin] = found.get(vin)
            if self._ttl_s > 0:
                self._cache[vin] = (vehicle, expires)
        return answers

    def lookup(self, session: Session, vin: str) -> Vehicle | None:
        """The registered vehicle ``vin``, or None (not registered, or not a VIN at all)."""
        now = self._clock()
        cached = self._cache.get(vin)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            vehicle: Vehicle | None = get_vehicle(session, vin)
        except (NotFoundError, BadInputError):
            vehicle = None
        if self._ttl_s > 0:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            self._cache[vin] = (vehicle, now + self._ttl_s)
        return vehicle

    def forget(self) -> None:
        """Drop every cached answer."""
        self._cache.clear()
