"""Vehicle version manifests on the platform: the keys that sign them, registered per vehicle
at the factory, and each manifest verified before anything it says is believed.

A vehicle sends its signed manifest (Uptane §5.4.2: each ECU's signed version report,
bundled and signed by the primary) as an ``ota.manifest`` event on its uplink. Here it is
checked with :func:`drivetrain.core.uptane_manifest.verify_vehicle_manifest` against the keys
registered for that VIN and the last counter accepted per ECU (a replay is refused); only then
are its reports used (the rollout's vehicle state, the twin's ECU versions).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, SSlibKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.ota.models import VehicleKeyRow
from drivetrain.cloud.twins import get_twin
from drivetrain.core.errors import BadInputError, NotFoundError
from drivetrain.core.uptane_manifest import MAX_ECUS, EcuVersionReport, verify_vehicle_manifest

#: Key types a vehicle's ECUs may sign version reports with, and the scheme of each.
KEY_SCHEMES: Final = {"ed25519": "ed25519", "ecdsa": "ecdsa-sha2-nistp256"}
_ED25519_PUBLIC: Final = re.compile(r"[0-9a-f]{64}")
_MAX_PEM: Final = 1024
ECU_SERIAL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def parse_public_key(data: Mapping[str, Any], where: str) -> Key:
    """A public key from its securesystemslib form (``keytype``, ``scheme``,
    ``keyval.public``): Ed25519 (64 hex digits) or ECDSA P-256 (PEM). The key id is computed
    here (SHA-256 of the canonical JSON, TUF's default), never taken from the caller.

    Raises:
        BadInputError: naming ``where`` and the field: another key type or scheme, a public
            part of the wrong form.
    """
    keytype, scheme = data.get("keytype"), data.get("scheme")
    if keytype not in KEY_SCHEMES:
        raise BadInputError(f"{where}.keytype {keytype!r}; expected one of {list(KEY_SCHEMES)}")
    if scheme != KEY_SCHEMES[keytype]:
        raise BadInputError(f"{where}.scheme {scheme!r}; expected {KEY_SCHEMES[keytype]!r} "
                            f"for a {keytype} key")
    keyval = data.get("keyval")
    public = keyval.get("public") if isinstance(keyval, Mapping) else None
    if not isinstance(public, str):
        raise BadInputError(f"{where}.keyval.public: missing; expected the public key")
    if keytype == "ed25519" and not _ED25519_PUBLIC.fullmatch(public):
        raise BadInputError(f"{where}.keyval.public: expected 64 lower-case hex digits (an "
                            f"Ed25519 public key), got {len(public)} characters")
    if keytype == "ecdsa":
        try:
            loaded = load_pem_public_key(public.encode()) if len(public) <= _MAX_PEM else None
        except ValueError:
            loaded = None
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or \
                not isinstance(loaded.curve, ec.SECP256R1):
            raise BadInputError(f"{where}.keyval.public: expected a PEM public key on curve "
                                "P-256 (secp256r1)")
    body = {"keytype": keytype, "scheme": scheme, "keyval": {"public": public}}
    canonical = encode_canonical(body)
    assert isinstance(canonical, str)  # no output file given: the canonical text is returned
    keyid = hashlib.sha256(canonical.encode()).hexdigest()
    return SSlibKey.from_dict(keyid, body)


def check_ecu_serial(serial: object, where: str) -> str:
    """Raises BadInputError unless ``serial`` is an ECU serial (1-64 letters, digits,
    '_', '.', ':', '-')."""
    if not isinstance(serial, str) or not ECU_SERIAL.fullmatch(serial):
        raise BadInputError(f"{where} {serial!r}: expected 1-64 letters, digits, '_', '.', "
                            "':', '-' (e.g. 'BMS-001')")
    return serial


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
    if len(ecu_keys) > MAX_ECUS:
        raise BadInputError(f"ecu_keys: {len(ecu_keys)} ECUs; at most {MAX_ECUS}")
    check_ecu_serial(primary_serial, "primary_serial")
    for serial in ecu_keys:
        check_ecu_serial(serial, "ecu_keys serial")
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
