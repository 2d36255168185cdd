"""Custom signals: judging a vehicle's samples against the catalog its decoder manifest names.

The pipeline judges every sample against the standard catalog first (one shared
:class:`~drivetrain.cloud.ingest.validation.PathTable`, the hot path). Only samples whose
path that catalog does not know (``unknown_path``) are looked at again, per vehicle: the
vehicle reports the decoder manifest in force in its ECU inventory (entry ``DecoderManifest``:
model and version, see ``drivetrain.core.can.MANIFEST_ECU``); that manifest names a version of
the tenant's signal catalog (the standard catalog plus the tenant's overlays); the samples are
judged against that version. A custom signal in it is accepted (or refused for its type, range
or consent like any other); one not in it stays ``unknown_path``, and the dead letter says
which catalog it was checked against.

Answers are cached per VIN for a few seconds (the manifest in force changes rarely) and the
path table of each (tenant, catalog version) for good (catalog versions never change).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from drivetrain.cloud.fleet import Vehicle
from drivetrain.cloud.ingest.reasons import SAMPLE_REASON_CODES
from drivetrain.cloud.ingest.validation import PathTable, SampleColumns, judge_samples
from drivetrain.core.can import MANIFEST_ECU
from drivetrain.core.errors import NotFoundError
from drivetrain.core.vss import PRIVACY_CATEGORIES, privacy_category_for

_UNKNOWN: Final = SAMPLE_REASON_CODES["unknown_path"]
#: Catalog path tables kept (one per tenant catalog version in use).
MAX_TABLES: Final = 64
#: Unknown paths a catalog's path table remembers before it starts afresh (a vehicle sending
#: random paths must not grow the receiver's memory without bound).
MAX_UNKNOWN_PATHS: Final = 10_000


@dataclass(frozen=True, slots=True)
class VehicleCatalog:
    """The catalog a vehicle's samples are judged against.

    Attributes:
        version: the tenant catalog version (None: the standard catalog).
        described: in words, for dead letters ("catalog version 3 of tenant 'acme', named by
            decoder manifest 2 of model 'compact-bev'").
        table: its path table (None: the standard catalog, already judged).
    """

    version: int | None
    described: str
    table: PathTable | None


def _standard(why: str) -> VehicleCatalog:
    return VehicleCatalog(None, f"the standard VSS catalog ({why})", None)


class VehicleCatalogs:
    """Which catalog each vehicle's samples are judged against (see the module docstring).

    Args:
        ttl_s: how long the answer for one VIN is reused, seconds.
        clock: monotonic seconds.
    """

    def __init__(self, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._by_vin: dict[str, tuple[float, VehicleCatalog]] = {}
        self._tables: dict[tuple[str, int], PathTable] = {}

    def of(self, session: Session, vehicle: Vehicle) -> VehicleCatalog:
        """The catalog of ``vehicle`` now (cached for ``ttl_s``)."""
        now = self._clock()
        cached = self._by_vin.get(vehicle.vin)
        if cached is not None and now - cached[0] < self._ttl_s and not _overgrown(cached[1]):
            return cached[1]
        found = self._resolve(session, vehicle)
        if len(self._by_vin) > 100_000:  # bounded: a fleet's worth of answers
            self._by_vin.clear()
        self._by_vin[vehicle.vin] = (now, found)
        return found

    def _resolve(self, session: Session, vehicle: Vehicle) -> VehicleCatalog:
        # Imported here: the campaigns domain reaches ingestion through the commands
        # dispatcher, so a module-level import would be circular.
        from drivetrain.cloud.campaigns import manifest_catalog_version, tenant_catalog
        from drivetrain.cloud.twins import find_ecu

        entry = find_ecu(session, vehicle.vin, MANIFEST_ECU)
        if entry is None or not entry.hardware_id or not (entry.software_version or "").isdigit():
            return _standard("the vehicle reports no decoder manifest in force")
        model, manifest = entry.hardware_id, int(entry.software_version or "0")
        named = f"decoder manifest {manifest} of model {model!r}"
        try:
            version = manifest_catalog_version(session, vehicle.tenant, model, manifest)
        except NotFoundError:
            return _standard(f"{named}, which the vehicle reports, is not known")
        if version is None:
            return _standard(f"named by {named}")
        key = (vehicle.tenant, version)
        table = self._tables.get(key)
        if table is None or len(table) > len(table.catalog) + MAX_UNKNOWN_PATHS:
            try:
                catalog, _ = tenant_catalog(session, vehicle.tenant, version)
            except NotFoundError:
                return _standard(f"catalog version {version}, named by {named}, is not known")
            if len(self._tables) >= MAX_TABLES:
                self._tables.clear()
            table = self._tables[key] = PathTable(catalog)
        return VehicleCatalog(
            version, f"catalog version {version} of tenant {vehicle.tenant!r}, named by {named}",
            table,
        )


def _overgrown(found: VehicleCatalog) -> bool:
    table = found.table
    return table is not None and len(table) > len(table.catalog) + MAX_UNKNOWN_PATHS


@dataclass(frozen=True, slots=True)
class CustomJudgement:
    """The outcome of judging unknown paths against the vehicles' own catalogs.

    Attributes:
        codes: every sample's reason code, custom signals judged.
        category: every sample's privacy category index for the lake (a custom signal's by
            the lake's rule for its path); None when no sample needed a second look.
        catalogs: per vehicle index, what its samples were checked against (None where it
            sent no unknown path).
    """

    codes: npt.NDArray[np.uint8]
    category: npt.NDArray[np.uint8] | None
    catalogs: Sequence[VehicleCatalog | None]


def judge_custom(
    session: Session,
    columns: SampleColumns,
    codes: npt.NDArray[np.uint8],
    shared: PathTable,
    vehicles: Sequence[Vehicle],
    consent: npt.NDArray[np.uint8],
    bounds: tuple[int, int],
    catalogs: VehicleCatalogs,
) -> CustomJudgement:
    """Judge again, against each vehicle's own catalog, the samples the standard catalog
    left ``unknown_path`` (``codes`` is not changed; the result carries new codes)."""
    unknown = codes == _UNKNOWN
    found: list[VehicleCatalog | None] = [None] * len(vehicles)
    if not unknown.any():
        return CustomJudgement(codes, None, found)
    codes = codes.copy()
    category = shared.category.take(columns.path_id)
    # The unknown rows grouped by vehicle with one stable sort (not a pass over every sample
    # per vehicle): rows stay in order within a vehicle.
    candidates = np.flatnonzero(unknown)
    owner = columns.vehicle[candidates]
    candidates = candidates[np.argsort(owner, kind="stable")]
    owners, starts = np.unique(columns.vehicle[candidates], return_index=True)
    for v, start, end in zip(owners.tolist(), starts.tolist(),
                             [*starts[1:].tolist(), len(candidates)], strict=True):
        resolved = found[v] = catalogs.of(session, vehicles[v])
        if resolved.table is None:
            continue
        rows = candidates[start:end]
        sub = columns.subset(rows)
        names = [shared.path(int(i)) for i in sub.path_id]
        own = resolved.table.ids_for(names)
        judged = judge_samples(
            SampleColumns(np.zeros(len(rows), np.int32), own, sub.ts_ns, sub.value,
                          sub.value_valid, sub.text, sub.text_valid),
            resolved.table, consent[v : v + 1], bounds,
        )
        codes[rows] = judged
        # The lake files a row under the category its rule gives the path (retention keys on
        # it, and the lake checks it), whatever an overlay says; consent was judged above on
        # the overlay's own category.
        rule = {n: PRIVACY_CATEGORIES.index(privacy_category_for(n)) for n in set(names)}
        category[rows] = np.array([rule[n] for n in names], np.uint8)
    return CustomJudgement(codes, category, found)
