"""The audit log: an append-only, keyed hash chain of every state-changing action.

Each tenant has one chain. Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash, or 64 zeros
for the first) and its own ``entry_hash`` = HMAC-SHA256, under the deployment's audit key,
over a canonical JSON array of its fields, so editing, deleting or reordering a row breaks the
chain where it happened and :func:`verify_chain` names that entry. The key lives outside the
database (``audit_key`` setting, or derived from the auth secret), so someone who can write
the database but not read the key cannot recompute the hashes of an edited entry or of the
entries after it. The database additionally refuses UPDATE/DELETE on the table (triggers in
the first migration).

What the chain alone cannot show: a writer who removes the newest entries *and* moves the
chain head back, or drops a tenant's whole chain, leaves a shorter chain that verifies. That
is what checkpoints are for: :func:`chain_heads` lists each chain's last sequence number and
hash, an operator exports them signed on a schedule (``drivetrain db audit-checkpoint``), and
:func:`check_checkpoint` finds each checkpointed entry still in place, unchanged.

A :class:`~drivetrain.cloud.infra.Database` opened without an audit key writes plain SHA-256
entries (``key_id`` None), which anyone who can write the database can recompute; entries from
before keying are such entries too. Verification counts them (``unkeyed_entries``) and refuses
an unkeyed entry after a keyed one in the same chain (a downgrade).

The only writers and readers are :func:`record_audit` (call it inside the same session as the
change it records, so both commit or neither does) and :func:`list_audit`.

An entry about one registered vehicle is written with its ``region``: its actor, target and
details (the VIN, who acted, what was read) go to that region's store and the chain here keeps
a pointer (``drivetrain.cloud.infra.audit_regional``); :func:`list_audit` merges them back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra.audit_regional import (
    REGIONAL_ACTOR,
    personal_parts,
    pointer_region,
    store_personal,
)
from drivetrain.cloud.infra.models import AuditChainRow, AuditEntryRow
from drivetrain.core.errors import BadInputError

GENESIS_HASH = "0" * 64
#: Where a session finds the audit key of its database (set by ``Database.session``).
AUDIT_KEY_INFO: Final = "drivetrain.audit_key"
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_LIST_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action. ``seq`` counts from 1 within the tenant's chain."""

    tenant: str
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    request_id: str | None
    prev_hash: str
    entry_hash: str
    key_id: str | None = None
    #: The region store holding the personal part (actor, target, details); None: all here.
    region: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (timestamps as ISO 8601 UTC)."""
        return {
            "tenant": self.tenant,
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": dict(self.details),
            "request_id": self.request_id,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
            "key_id": self.key_id,
            "region": self.region,
        }


@dataclass(frozen=True, slots=True)
class BrokenEntry:
    """Where a chain first fails verification and why."""

    tenant: str
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """Result of :func:`verify_chain`: ``ok`` unless ``first_broken`` names an entry."""

    entries_checked: int
    first_broken: BrokenEntry | None
    #: Entries hashed without a key (before keying, or by an unkeyed database).
    unkeyed_entries: int = 0

    @property
    def ok(self) -> bool:
        """True when every checked chain is intact."""
        return self.first_broken is None


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """``details`` as canonical JSON (sorted keys, compact, no NaN).

    Raises ``TypeError``/``ValueError`` when it is not JSON-serialisable.
    """
    return json.dumps(
        dict(details or {}), sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def compute_entry_hash(
    *,
    tenant: str,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    target: str,
    details_json: str,
    request_id: str | None,
    prev_hash: str,
    key: bytes | None = None,
) -> str:
    """HMAC-SHA256 under ``key`` (plain SHA-256 without one), hex, of an entry's fields and
    its predecessor's hash, canonically encoded."""
    fields = [
        tenant,
        seq,
        occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        actor,
        action,
        target,
        details_json,
        request_id,
        prev_hash,
    ]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if key is None:
        return hashlib.sha256(encoded).hexdigest()
    return hmac.new(key, encoded, hashlib.sha256).hexdigest()


def audit_key_id(key: bytes) -> str:
    """A short public id of ``key`` (16 hex digits), stored with each entry it authenticates."""
    return hashlib.sha256(b"drivetrain-audit-key-id\0" + key).hexdigest()[:16]


def _session_key(session: Session) -> bytes | None:
    key = session.info.get(AUDIT_KEY_INFO)
    return key if isinstance(key, bytes) else None


def _entry(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(
        tenant=row.tenant_id,
        seq=row.seq,
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=json.loads(row.details),
        request_id=row.request_id,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
        key_id=row.key_id,
    )


def record_audit(
    session: Session,
    *,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
    vehicle: tuple[str, str] | None = None,
) -> AuditEntry:
    """Append one entry to ``tenant``'s chain inside ``session``'s transaction.

    ``action`` is ``<domain>.<verb>`` (e.g. ``"tenant.create"``, ``"ota.campaign.start"``),
    ``actor`` the principal (client id, or ``cli:<user>``), ``target`` what was acted on.
    ``vehicle``: (VIN, region) of the registered vehicle the entry is about — its actor,
    target and details are kept in that region's store, the chain holds a pointer (the entry
    returned is the pointer). Raises :class:`BadInputError` for a malformed action name,
    ``ResidencyError`` when the region's store serves another region; concurrent appenders of
    one tenant are serialised by the database (row lock / SQLite write lock).
    """
    if not _ACTION.match(action):
        raise BadInputError(
            f"audit action {action!r} is malformed; expected '<domain>.<verb>' in lower case, "
            "e.g. 'tenant.create'"
        )
    occurred_at = (now or datetime.now(UTC)).astimezone(UTC)
    details_json = canonical_details(details)
    # Touch the chain head first: this takes the write lock before we read it, so two
    # appenders can never both extend the same predecessor.
    bumped = session.execute(
        update(AuditChainRow)
        .where(AuditChainRow.tenant_id == tenant)
        .values(last_seq=AuditChainRow.last_seq + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(bumped, "rowcount", 0) == 0:
        session.execute(
            insert(AuditChainRow).values(tenant_id=tenant, last_seq=1, last_hash=GENESIS_HASH)
        )
    seq, prev_hash = session.execute(
        select(AuditChainRow.last_seq, AuditChainRow.last_hash).where(
            AuditChainRow.tenant_id == tenant
        )
    ).one()
    key = _session_key(session)
    if vehicle is not None:
        vin, region = vehicle
        target, pointer = store_personal(
            session, region=region, tenant=tenant, seq=seq, vin=vin, actor=actor,
            target=target, details_json=details_json, key=key)
        actor, details_json = REGIONAL_ACTOR, canonical_details(pointer)
    entry_hash = compute_entry_hash(
        tenant=tenant,
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        target=target,
        details_json=details_json,
        request_id=request_id,
        prev_hash=prev_hash,
        key=key,
    )
    row = AuditEntryRow(
        tenant_id=tenant,
        seq=seq,
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        target=target,
        details=details_json,
        request_id=request_id,
        prev_hash=prev_hash,
        entry_hash=entry_hash,
        key_id=audit_key_id(key) if key is not None else None,
    )
    session.add(row)
    session.execute(
        update(AuditChainRow)
        .where(AuditChainRow.tenant_id == tenant)
        .values(last_hash=entry_hash)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return _entry(row)


def list_audit(
    session: Session,
    tenant: str,
    *,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
) -> list[AuditEntry]:
    """``tenant``'s entries with ``seq > after_seq``, oldest first, at most ``limit``.

    An entry whose personal part is kept in a region store comes back with it (and
    ``region`` set); where an erasure deleted it, or it no longer matches the digest the
    chain holds (edited), the entry shows the pointer, the latter with ``"mismatch": true``.
    ``action`` filters on an exact action name. Raises :class:`BadInputError` for a limit
    outside 1..1000 or a negative ``after_seq``.
    """
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadInputError(f"limit={limit} is out of range; expected 1..{MAX_LIST_LIMIT}")
    if after_seq < 0:
        raise BadInputError(f"after_seq={after_seq} is negative; expected >= 0")
    query = (
        select(AuditEntryRow)
        .where(AuditEntryRow.tenant_id == tenant, AuditEntryRow.seq > after_seq)
        .order_by(AuditEntryRow.seq)
        .limit(limit)
    )
    if action is not None:
        query = query.where(AuditEntryRow.action == action)
    return _with_personal_parts(session, tenant, [_entry(row) for row in session.scalars(query)])


def _with_personal_parts(session: Session, tenant: str,
                         entries: list[AuditEntry]) -> list[AuditEntry]:
    """``entries`` with the personal part of each pointer entry merged from its store."""
    key = _session_key(session)
    wanted = []
    for entry in entries:
        region = pointer_region(entry.actor, entry.details)
        if region is not None:
            wanted.append((entry.seq, region, str(entry.details["personal"]),
                           key if entry.key_id is not None else None))
    if not wanted:
        return entries
    parts = personal_parts(session, tenant, wanted)
    merged = []
    for entry in entries:
        region = pointer_region(entry.actor, entry.details)
        if region is None:
            merged.append(entry)
        elif entry.seq not in parts:  # erased
            merged.append(replace(entry, region=region))
        elif (part := parts[entry.seq]) is None:
            merged.append(replace(entry, region=region,
                                  details={**entry.details, "mismatch": True}))
        else:
            actor, target, details = part
            merged.append(replace(entry, actor=actor, target=target, details=details,
                                  region=region))
    return merged


@dataclass
class _TenantCheck:
    checked: int = 0
    unkeyed: int = 0
    broken: BrokenEntry | None = None


def _verify_tenant(session: Session, tenant: str, key: bytes | None) -> _TenantCheck:
    result = _TenantCheck()
    expected_seq, prev_hash, keyed_seen = 1, GENESIS_HASH, False
    key_id = audit_key_id(key) if key is not None else None
    rows = session.scalars(
        select(AuditEntryRow).where(AuditEntryRow.tenant_id == tenant).order_by(AuditEntryRow.seq)
    )
    for row in rows:
        result.checked += 1
        reason = _entry_problem(row, expected_seq, prev_hash, keyed_seen, key, key_id)
        if reason is not None:
            result.broken = BrokenEntry(tenant, row.seq, reason)
            return result
        keyed_seen = keyed_seen or row.key_id is not None
        result.unkeyed += row.key_id is None
        expected_seq, prev_hash = row.seq + 1, row.entry_hash
    head = session.execute(
        select(AuditChainRow.last_seq, AuditChainRow.last_hash).where(
            AuditChainRow.tenant_id == tenant
        )
    ).one_or_none()
    last_seq = expected_seq - 1
    if head is not None and (head.last_seq != last_seq or head.last_hash != prev_hash):
        result.broken = BrokenEntry(
            tenant,
            last_seq + 1,
            f"chain head records {head.last_seq} entries but {last_seq} remain "
            "(entries were removed)",
        )
    return result


def _entry_problem(
    row: AuditEntryRow, expected_seq: int, prev_hash: str, keyed_seen: bool,
    key: bytes | None, key_id: str | None,
) -> str | None:
    """Why ``row`` breaks the chain, or None."""
    if row.seq != expected_seq:
        return f"sequence gap: expected entry {expected_seq}, found {row.seq}"
    if row.prev_hash != prev_hash:
        return "prev_hash does not match the previous entry's hash"
    if row.key_id is None and keyed_seen:
        return "unkeyed entry after keyed ones (rewritten without the audit key)"
    if row.key_id is not None and row.key_id != key_id:
        held = f"key {key_id}" if key_id else "no audit key"
        return (f"entry is keyed with audit key {row.key_id} but the verifier holds {held}; "
                "verify with that deployment's audit key")
    recomputed = compute_entry_hash(
        tenant=row.tenant_id,
        seq=row.seq,
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details_json=row.details,
        request_id=row.request_id,
        prev_hash=row.prev_hash,
        key=key if row.key_id is not None else None,
    )
    if not hmac.compare_digest(recomputed, row.entry_hash):
        return "contents do not match the entry hash (row was edited)"
    return None


def verify_chain(session: Session, tenant: str | None = None) -> ChainVerification:
    """Recompute ``tenant``'s chain (or every tenant's) with the session's audit key and
    report the first broken entry."""
    if tenant is not None:
        tenants = [tenant]
    else:
        in_log = set(session.scalars(select(AuditEntryRow.tenant_id).distinct()))
        in_heads = set(session.scalars(select(AuditChainRow.tenant_id)))
        tenants = sorted(in_log | in_heads)
    key = _session_key(session)
    total = unkeyed = 0
    for name in tenants:
        check = _verify_tenant(session, name, key)
        total, unkeyed = total + check.checked, unkeyed + check.unkeyed
        if check.broken is not None:
            return ChainVerification(total, check.broken, unkeyed)
    return ChainVerification(total, None, unkeyed)
