"""Vehicle version manifests on the platform: the keys that sign them, registered per vehicle
at the factory, and each manifest verified before anything it says is believed.

A vehicle sends its signed manifest (Uptane §5.4.2: each ECU's signed version report,
bundled and signed by the primary) as an ``ota.manifest`` event on its uplink. Here it is
checked with :func:`drivetrain.core.uptane_manifest.verify_vehicle_manifest` against the keys
registered for that VIN and the last counter accepted per ECU (a replay is refused); only then
are its reports used (the rollout's vehicle state, the twin's ECU versions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from securesystemslib.signer import Key
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.ota.models import VehicleKeyRow
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.uptane_manifest import EcuVersionReport, verify_vehicle_manifest


def register_vehicle_keys(session: Session, *, tenant: str, vin: str, primary_serial: str,
                          primary_key: Key, ecu_keys: Mapping[str, Key],
                          now: datetime | None = None) -> None:
    """Register (or replace) the public keys that sign ``vin``'s version reports.

    Raises:
        NotFoundError: ``vin`` is not a vehicle of ``tenant``.
        BadInputError: no ECU key, or the primary's serial among the ECUs' names.
    """
    get_twin(session, vin, tenant=tenant)
    if not ecu_keys:
        raise BadInputError("ecu_keys: at least one ECU key is needed")
    now = now or datetime.now(UTC)
    for row in session.scalars(select(VehicleKeyRow).where(VehicleKeyRow.vin == vin)):
        session.delete(row)
    session.flush()
    session.add(VehicleKeyRow(vin=vin, ecu_serial=f"primary:{primary_serial}",
                              tenant_id=tenant, primary=True,
                              key=_key_json(primary_key), last_counter=-1,
                              updated_at=now))
    for serial, key in sorted(ecu_keys.items()):
        session.add(VehicleKeyRow(vin=vin, ecu_serial=serial, tenant_id=tenant, primary=False,
                                  key=_key_json(key), last_counter=-1,
                                  updated_at=now))
    session.flush()


def accept_manifest(session: Session, *, tenant: str, vin: str, raw: bytes,
                    now: datetime | None = None) -> list[EcuVersionReport]:
    """Verify ``vin``'s manifest with its registered keys and remember each ECU's counter.

    Raises:
        NotFoundError: no keys registered for ``vin`` in ``tenant``.
        ManifestFormatError: malformed (too large, not JSON, a bad field).
        ManifestSignatureError: a signature missing or wrong — a forged report or manifest.
        VerificationError: another vehicle's manifest, an unknown ECU, or a replay.
    """
    rows = list(session.scalars(select(VehicleKeyRow).where(
        VehicleKeyRow.vin == vin, VehicleKeyRow.tenant_id == tenant)))
    primary = next((r for r in rows if r.primary), None)
    if primary is None:
        raise NotFoundError(f"no version-report keys are registered for {vin}")
    ecus = {r.ecu_serial: r for r in rows if not r.primary}
    reports = verify_vehicle_manifest(
        raw, vin=vin, primary_key=Key.from_dict(*_keyid_and_dict(primary.key)),
        ecu_keys={s: Key.from_dict(*_keyid_and_dict(r.key)) for s, r in ecus.items()},
        last_counters={s: r.last_counter for s, r in ecus.items()})
    now = now or datetime.now(UTC)
    for report in reports:
        ecus[report.ecu_serial].last_counter = report.counter
        ecus[report.ecu_serial].updated_at = now
    session.flush()
    return reports


def _keyid_and_dict(text: str) -> tuple[str, dict[str, object]]:
    data = json.loads(text)
    keyid = data.pop("keyid")
    return keyid, data


def _key_json(key: Key) -> str:
    return json.dumps({"keyid": key.keyid, **key.to_dict()}, sort_keys=True)
