"""Twin fields by name, for many vehicles at once: what a campaign's ``dimensions`` stamp on
its rows (``model``, ``region``, ``owner``, ``software.<ECU>``, ``hardware.<ECU>``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivetrain.cloud.twins.models import EcuRow, TwinRow
from drivetrain.cloud.twins.registry import IN_CHUNK

_METADATA = ("model", "region", "owner")


def twin_fields(
    session: Session, tenant: str, vins: Sequence[str], fields: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """Per VIN of ``tenant`` that has a twin, each of ``fields``: metadata (``model``,
    ``region``, ``owner``) or an ECU's ``software.<ECU>`` / ``hardware.<ECU>``; None where the
    twin has no value. Reads only (a VIN without a twin, or another tenant's, is left out);
    other field names (``vin`` included) read as None."""
    ecus = sorted({f.split(".", 1)[1] for f in fields
                   if f.startswith(("software.", "hardware.")) and "." in f})
    out: dict[str, dict[str, str | None]] = {}
    for start in range(0, len(vins), IN_CHUNK):
        chunk = list(vins[start : start + IN_CHUNK])
        for row in session.scalars(select(TwinRow).where(TwinRow.vin.in_(chunk),
                                                         TwinRow.tenant_id == tenant)):
            out[row.vin] = {f: (getattr(row, f) if f in _METADATA else None) for f in fields}
        if ecus:
            for ecu in session.scalars(select(EcuRow).where(EcuRow.vin.in_(chunk),
                                                            EcuRow.ecu.in_(ecus))):
                values = out.get(ecu.vin)
                if values is None:
                    continue
                for kind, value in (("software", ecu.software_version),
                                    ("hardware", ecu.hardware_id)):
                    if f"{kind}.{ecu.ecu}" in values:
                        values[f"{kind}.{ecu.ecu}"] = value
    return out
