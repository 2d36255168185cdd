"""The personal part of audit entries about one vehicle, kept in its region's store.

An entry about a vehicle (a consent change, a Data Act grant or read, an owner binding)
names the VIN, who acted and what was read: personal data of the vehicle's region. When the
writer names the vehicle's region (:func:`~drivetrain.cloud.infra.audit.record_audit` with
``region``), the actor, target and details go to :class:`AuditPersonalRow` in that region's
store, and the entry in the state database's chain keeps only a pointer: actor
:data:`REGIONAL_ACTOR`, target ``region:<REGION>`` and details ``{"region": ..., "personal":
<digest>}``. The chain hashes the pointer, so the chain stays verifiable with nothing
personal in it; the digest (HMAC-SHA256 under the audit key, SHA-256 without one) covers the
personal part and a random salt, so an edited personal part is detected on reading, and
once an erasure deletes it (with the salt) the digest links to nothing.

:func:`personal_parts` reads them back by (tenant, seq), one query per region store and
chunk; :func:`~drivetrain.cloud.infra.audit.list_audit` merges them into the entries it returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Final, cast

from sqlalchemy import Integer, String, Table, Text, select, tuple_
from sqlalchemy.orm import Mapped, Session, mapped_column

from drivetrain.cloud.infra.models import Base
from drivetrain.cloud.infra.region_stores import (
    check_residency,
    region_session,
    register_regional_table,
)

#: The actor a pointer entry names in place of the real one (kept in the region store).
REGIONAL_ACTOR: Final = "regional"
#: Entries per ``IN (...)`` query when reading personal parts back.
_CHUNK: Final = 500


class AuditPersonalRow(Base):
    """Who did what to one vehicle in one audit entry (``tenant_id``, ``seq``): kept in the
    vehicle's region store. Deleted by an erasure of the vehicle; the entry's pointer stays."""

    __tablename__ = "audit_personal"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    vin: Mapped[str] = mapped_column(String(17), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(300))
    # Canonical JSON text (sorted keys, compact): digested exactly as stored.
    details: Mapped[str] = mapped_column(Text)
    salt: Mapped[str] = mapped_column(String(32))


AUDIT_PERSONAL = register_regional_table(cast(Table, AuditPersonalRow.__table__))


def personal_digest(
    *, tenant: str, seq: int, vin: str, actor: str, target: str, details_json: str, salt: str,
    key: bytes | None,
) -> str:
    """The digest a pointer entry holds of its personal part (hex)."""
    fields = [tenant, seq, vin, actor, target, details_json, salt]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if key is None:
        return hashlib.sha256(encoded).hexdigest()
    return hmac.new(key, encoded, hashlib.sha256).hexdigest()


def store_personal(
    session: Session, *, region: str, tenant: str, seq: int, vin: str, actor: str,
    target: str, details_json: str, key: bytes | None,
) -> tuple[str, dict[str, str]]:
    """Write the personal part of entry ``seq`` to ``region``'s store; the pointer's
    (target, details) for the state database's entry.

    Raises:
        ResidencyError: the store serves another region.
    """
    region = region.upper()
    store = region_session(session, region)
    check_residency(store, [region])
    salt = secrets.token_hex(16)
    store.add(AuditPersonalRow(tenant_id=tenant, seq=seq, vin=vin, actor=actor, target=target,
                               details=details_json, salt=salt))
    store.flush()
    digest = personal_digest(tenant=tenant, seq=seq, vin=vin, actor=actor, target=target,
                             details_json=details_json, salt=salt, key=key)
    return f"region:{region}", {"region": region, "personal": digest}


def pointer_region(actor: str, details: Mapping[str, Any]) -> str | None:
    """The region a pointer entry's personal part is kept in; None for a whole entry."""
    if actor != REGIONAL_ACTOR or set(details) != {"region", "personal"}:
        return None
    region = details["region"]
    return region if isinstance(region, str) else None


def personal_parts(
    session: Session, tenant: str, wanted: Iterable[tuple[int, str, str, bytes | None]]
) -> dict[int, tuple[str, str, dict[str, Any]] | None]:
    """(actor, target, details) of each entry of ``wanted`` ((seq, region, digest, key it was
    digested under) of pointer entries) by seq, read from its region store: None where the
    part no longer matches its digest (edited); absent where it is gone (erased)."""
    by_region: dict[str, dict[int, tuple[str, bytes | None]]] = {}
    for seq, region, digest, key in wanted:
        by_region.setdefault(region, {})[seq] = (digest, key)
    found: dict[int, tuple[str, str, dict[str, Any]] | None] = {}
    table = AuditPersonalRow
    for region, digests in sorted(by_region.items()):
        store = region_session(session, region)
        seqs = sorted(digests)
        for start in range(0, len(seqs), _CHUNK):
            keys = [(tenant, s) for s in seqs[start : start + _CHUNK]]
            query = select(table).where(tuple_(table.tenant_id, table.seq).in_(keys))
            for row in store.scalars(query):
                digest, key = digests[row.seq]
                expected = personal_digest(
                    tenant=tenant, seq=row.seq, vin=row.vin, actor=row.actor,
                    target=row.target, details_json=row.details, salt=row.salt, key=key)
                if hmac.compare_digest(expected, digest):
                    found[row.seq] = (row.actor, row.target, json.loads(row.details))
                else:
                    found[row.seq] = None
    return found
