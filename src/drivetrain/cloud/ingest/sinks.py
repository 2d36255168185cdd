"""Where accepted data goes: the lake and the twins' reported state, behind small protocols.

The pipeline writes samples through :class:`LakeWriter` (the telemetry lake's ``append``:
idempotent per batch id) and reports the latest value per (vehicle, signal), the vehicles'
acknowledgements and their ECU inventories through :class:`ReportedStateSink` (the twins
domain). Each protocol has an
in-memory implementation here, used by tests and by anything that runs without the real
domain, and an adapter to the real one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session

from drivetrain.core.wire import Ack, EcuInfo

#: Columns of the rows handed to the lake (see docs/ingest.md, "What lands in the lake").
LAKE_COLUMNS: Final = (
    "vehicle", "path", "ts", "value", "text", "category", "batch_id", "campaign",
)

#: A reported value: the signal's value in its VSS form and when it was measured (UTC).
ReportedValue = tuple[bool | int | float | str | list[Any], datetime]


class AppendOutcome(Protocol):
    """What one lake append did (``drivetrain.cloud.lake.AppendResult`` has these fields)."""

    @property
    def rows_written(self) -> int: ...

    @property
    def rows_skipped(self) -> int: ...

    @property
    def batches_skipped(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class LakeAppend:
    """What one in-memory append did: rows written, and rows skipped because their batch id
    was already committed (a re-delivery), with the batch ids skipped."""

    rows_written: int
    rows_skipped: int
    batches_skipped: tuple[str, ...] = ()


class LakeWriter(Protocol):
    """The telemetry lake, as ingestion uses it (``drivetrain.cloud.lake.Lake`` is one)."""

    def append(self, region: str, tenant: str, table: pa.Table) -> AppendOutcome:
        """Store ``table`` (columns :data:`LAKE_COLUMNS`) under ``region``'s storage root.

        Idempotent per batch id: rows whose ``batch_id`` is already committed are skipped.
        Raises ``StorageError`` when nothing could be committed.
        """
        ...


class ReportedStateSink(Protocol):
    """The digital twins' reported state, as ingestion feeds it."""

    def apply_reported(
        self, session: Session, reports: Mapping[str, Mapping[str, ReportedValue]]
    ) -> None:
        """Record, per VIN and VSS path, the latest value just ingested (with its time)."""
        ...

    def record_acks(self, session: Session, vin: str, acks: Sequence[Ack]) -> None:
        """Record what became of downlink messages, as the vehicle acknowledged them."""
        ...

    def record_inventory(self, session: Session, vin: str, ecus: Sequence[EcuInfo]) -> None:
        """Record the ECUs a vehicle reported (a ``vehicle.inventory`` event).

        Raises ``BadInputError`` for an entry the twins refuse (a malformed name, hardware id
        or software version; nothing is recorded then) and ``NotFoundError`` for a vehicle
        the twins do not know.
        """
        ...


@dataclass
class MemoryLake:
    """An in-memory lake keeping appended tables per (region, tenant), idempotent per batch id.

    Thread-safe. ``tables`` holds what was written; ``committed`` the batch ids seen.
    """

    tables: dict[tuple[str, str], list[pa.Table]] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def append(self, region: str, tenant: str, table: pa.Table) -> LakeAppend:
        with self._lock:
            batch = table.column("batch_id").combine_chunks()
            if not pa.types.is_dictionary(batch.type):
                batch = batch.dictionary_encode()
            names = batch.dictionary.to_pylist()
            old = np.array([name in self.committed for name in names], np.bool_)
            indices = batch.indices.to_numpy(zero_copy_only=False)
            skip_rows = old[indices] if len(indices) else np.zeros(0, np.bool_)
            used = np.bincount(indices, minlength=len(names)) > 0 if len(indices) else old
            skipped = tuple(sorted(n for n, o, u in zip(names, old, used, strict=True) if o and u))
            fresh = table.filter(pa.array(~skip_rows)) if skip_rows.any() else table
            if fresh.num_rows:
                self.tables.setdefault((region, tenant), []).append(fresh)
            # (tenant-blind: batch ids are random 128-bit values)
            self.committed.update(n for n, u in zip(names, used, strict=True) if u)
            return LakeAppend(fresh.num_rows, table.num_rows - fresh.num_rows, skipped)

    def rows(self, region: str | None = None, tenant: str | None = None) -> pa.Table | None:
        """Every stored row (of one region/tenant), or None when there are none."""
        with self._lock:
            parts = [
                t
                for (r, te), tables in self.tables.items()
                if (region is None or r == region) and (tenant is None or te == tenant)
                for t in tables
            ]
        return pa.concat_tables([_plain(t) for t in parts]) if parts else None


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with dictionary columns decoded (tables of many appends concatenate)."""
    columns = [
        c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


@dataclass
class MemoryReportedState:
    """In-memory reported state: the latest value per (VIN, path), every ack, and the ECU
    inventory (name → latest report), by VIN.

    Keeps a value only when it is newer than the one held (re-delivery and out-of-order
    batches never move a signal back in time). Thread-safe.
    """

    values: dict[str, dict[str, ReportedValue]] = field(default_factory=dict)
    acks: dict[str, list[Ack]] = field(default_factory=dict)
    inventories: dict[str, dict[str, EcuInfo]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def apply_reported(
        self, session: Session, reports: Mapping[str, Mapping[str, ReportedValue]]
    ) -> None:
        with self._lock:
            for vin, signals in reports.items():
                held = self.values.setdefault(vin, {})
                for path, (value, ts) in signals.items():
                    if path not in held or held[path][1] <= ts:
                        held[path] = (value, ts)

    def record_acks(self, session: Session, vin: str, acks: Sequence[Ack]) -> None:
        with self._lock:
            self.acks.setdefault(vin, []).extend(acks)

    def record_inventory(self, session: Session, vin: str, ecus: Sequence[EcuInfo]) -> None:
        with self._lock:
            held = self.inventories.setdefault(vin, {})
            for ecu in ecus:
                known = held.get(ecu.name)
                if known is not None:  # a None field keeps what is held
                    ecu = EcuInfo(
                        ecu.name,
                        ecu.hardware_id or known.hardware_id,
                        ecu.software_version or known.software_version,
                    )
                held[ecu.name] = ecu


class TwinsReportedState:
    """The digital twins domain (``drivetrain.cloud.twins``) as the reported-state sink."""

    def apply_reported(
        self, session: Session, reports: Mapping[str, Mapping[str, ReportedValue]]
    ) -> None:
        from drivetrain.cloud.ingest.latest_values import LatestValues
        from drivetrain.cloud.twins import apply_reported, apply_stored_rows, path_major
        from drivetrain.cloud.twins.values import to_ns

        if isinstance(reports, LatestValues):  # ingestion's: rows straight from its columns
            now = datetime.now(UTC)
            rows = reports.stored_rows(to_ns(now, where="now"), path_major=path_major(session))
            apply_stored_rows(session, rows, now=now)
        else:
            apply_reported(session, reports)

    def record_acks(self, session: Session, vin: str, acks: Sequence[Ack]) -> None:
        from drivetrain.cloud.twins import record_acks

        record_acks(session, vin, acks)

    def record_inventory(self, session: Session, vin: str, ecus: Sequence[EcuInfo]) -> None:
        from drivetrain.cloud.twins import record_ecu_inventory

        record_ecu_inventory(
            session, vin, {e.name: (e.hardware_id, e.software_version) for e in ecus}
        )
