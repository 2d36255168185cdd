"""Carrying out data subject requests across the state database and the lake.

- **Access**: the subject's access archive (:func:`export_data` of their vehicles: every
  state row naming them, their telemetry as Parquet, JSON Schemas, a manifest with SHA-256s),
  written under the archive root and registered with the request.
- **Erasure**: every state row naming the vehicles is deleted (twin, registry, consent and
  grants, dead letters with their raw payloads, vehicle events, command deliveries, ingest
  counters), then every lake file holding their samples is rewritten without them. The
  request keeps only their pseudonyms, which :func:`reapply_erasures` uses after a backup is
  restored: anything of an erased vehicle that comes back with the backup is erased again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database, record_audit
from drivetrain.cloud.lake import ErasureResult, Lake
from drivetrain.cloud.portability.service import export_data
from drivetrain.cloud.portability.tables import Subject, delete_rows, portable_tables
from drivetrain.cloud.privacy import pseudonymiser
from drivetrain.cloud.privacy.requests import (
    DataRequest,
    close_request,
    erased_pseudonyms,
    open_request,
)
from drivetrain.core.errors import DrivetrainError, StorageError

#: Erasure passes over the lake while another process holds some of the files.
_LAKE_PASSES: Final = 3


def serve_access(
    database: Database, lake: Lake, *, tenant: str, vins: Iterable[str], archive_root: Path,
    actor: str,
) -> DataRequest:
    """Register an access request and write its archive to ``archive_root/<request id>``.

    Raises:
        BadInputError: no VIN or too many.
        StorageError: the archive cannot be written (the request is marked failed).
    """
    wanted = frozenset(vins)
    with database.session() as session:
        request = open_request(session, tenant=tenant, kind="access", vins=wanted,
                               requested_by=actor)
    folder = Path(archive_root) / request.request_id
    try:
        manifest = export_data(database, lake, Subject(tenant, wanted), folder, actor=actor)
    except DrivetrainError as e:
        _close(database, request, ok=False, outcome={"error": str(e)}, actor=actor)
        raise
    return _close(database, request, ok=True, actor=actor, outcome={
        "archive": str(folder), "rows": sum(s.rows for s in manifest.sections),
        "telemetry_rows": sum(t.rows for t in manifest.telemetry),
        "files": len(manifest.files)})


def serve_erasure(
    database: Database, lake: Lake, *, tenant: str, vins: Iterable[str], actor: str,
) -> DataRequest:
    """Register an erasure request and erase every trace of ``vins`` in ``tenant``.

    Raises:
        BadInputError: no VIN or too many.
        StorageError: the lake could not be rewritten (the request is marked failed; run
            :func:`reapply_erasures` to finish it).
    """
    wanted = frozenset(vins)
    with database.session() as session:
        request = open_request(session, tenant=tenant, kind="erasure", vins=wanted,
                               requested_by=actor)
    try:
        with database.session() as session:
            deleted = delete_rows(session, Subject(tenant, wanted))
        lake_results = _erase_lake(lake, tenant, request.subjects)
    except DrivetrainError as e:
        _close(database, request, ok=False, outcome={"error": str(e)}, actor=actor)
        raise
    return _close(database, request, ok=True, actor=actor, outcome={
        "state_rows": {t: n for t, n in deleted.items() if n},
        "lake_rows": sum(r.rows_removed for r in lake_results),
        "lake_keys_destroyed": sum(r.keys_destroyed for r in lake_results),
        "lake": [r.to_dict() for r in lake_results
                 if r.rows_removed or r.files_busy or r.keys_destroyed]})


def reapply_erasures(database: Database, lake: Lake, *, tenant: str, actor: str) -> dict[str, Any]:
    """Erase again what earlier erasure requests erased — after restoring a backup of the
    state database or the lake. Records ``privacy.erasure.reapply``.

    Raises:
        StorageError: the lake could not be rewritten.
    """
    with database.session() as session:
        erased = erased_pseudonyms(session, tenant)
        pseudonym = pseudonymiser(session, tenant)
        vins = {vin for vin in _vins_in_state(session, tenant)
                if not erased.isdisjoint(pseudonym.every(vin))}
        deleted = delete_rows(session, Subject(tenant, frozenset(vins))) if vins else {}
    results = _erase_lake(lake, tenant, sorted(erased)) if erased else []
    summary = {"vehicles": len(vins), "state_rows": sum(deleted.values()),
               "lake_rows": sum(r.rows_removed for r in results)}
    with database.session() as session:
        record_audit(session, tenant=tenant, actor=actor, action="privacy.erasure.reapply",
                     target=f"tenant:{tenant}", details=summary)
    return summary


def _vins_in_state(session: Session, tenant: str) -> set[str]:
    vins: set[str] = set()
    for table in portable_tables():
        if "vin" in table.c and "tenant_id" in table.c:
            vins |= set(session.scalars(sa.select(table.c.vin).where(
                table.c.tenant_id == tenant).distinct()))
    return vins


def _erase_lake(lake: Lake, tenant: str, pseudonyms: Iterable[str]) -> list[ErasureResult]:
    wanted = sorted(pseudonyms)
    results: list[ErasureResult] = []
    for _ in range(_LAKE_PASSES):
        latest = lake.erase_vehicles(tenant, wanted)
        results.extend(latest)
        if not any(r.files_busy for r in latest):
            return results
    raise StorageError("lake files stayed busy (being rewritten by another process) through "
                       f"{_LAKE_PASSES} erasure passes; run the erasure again")


def _close(database: Database, request: DataRequest, *, ok: bool, outcome: dict[str, Any],
           actor: str) -> DataRequest:
    with database.session() as session:
        return close_request(session, tenant=request.tenant, request_id=request.request_id,
                             ok=ok, outcome=outcome, actor=actor)
