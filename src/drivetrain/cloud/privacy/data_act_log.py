"""The Data Act's records: each access to a vehicle's data (visible to its owner), and what
each business recipient read per month (compensation metering).

Every Data Act read — allowed or refused — adds one row to the vehicle's access log and one
entry to the tenant's audit log (``privacy.read`` / ``privacy.read.refused``, purpose
``owner_access``, target ``data-act:<VIN>``), in its own transaction so that a refusal is kept
although the request fails. An allowed read by a third party also counts in the metering of
its month: requests, values and bytes. A recipient marked a small or medium enterprise (SME)
pays cost only (EU Data Act Art. 9(4)); others pay cost plus the margin — the tariff is the
settings ``data_act_cost_per_request_eur``, ``data_act_cost_per_mb_eur`` and
``data_act_margin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import Database, Principal, Role, get_client, record_audit
from drivetrain.cloud.privacy.data_act import Access
from drivetrain.cloud.privacy.models import DataActAccessRow, DataActMeterRow, DataActRecipientRow
from drivetrain.cloud.privacy.purposes import DATA_ACT_PURPOSE
from drivetrain.cloud.privacy.regional import audit_vehicle, contents, place
from drivetrain.core.errors import BadInputError

#: Most access-log entries one answer holds.
MAX_LOG_ENTRIES: Final = 1000
#: Largest count one access may add (keeps the metering columns in range).
_MAX_COUNT: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Tariff:
    """What a business recipient pays for Data Act access."""

    cost_per_request_eur: float
    cost_per_mb_eur: float
    margin: float

    def charge(self, requests: int, byte_count: int, *, sme: bool) -> float:
        """Cost of ``requests`` and ``byte_count``, plus the margin unless ``sme``."""
        cost = requests * self.cost_per_request_eur + byte_count / 1e6 * self.cost_per_mb_eur
        return round(cost if sme else cost * (1 + self.margin), 4)


def log_access(
    database: Database, principal: Principal, vin: str, *, action: str,
    access: Access | None = None, containers: list[str] | None = None,
    value_count: int = 0, byte_count: int = 0, error: Exception | None = None,
    request_id: str | None = None, now: datetime | None = None, new_request: bool = True,
) -> None:
    """Record one Data Act read of ``vin`` (allowed with ``access``, refused with ``error``).

    ``new_request`` False: what an earlier request went on to send (a stream's values at its
    end) — metered as values and bytes, not as another request."""
    now = now or datetime.now(UTC)
    party = "owner" if principal.role is Role.OWNER else "third_party"
    names = list(access.containers) if access else sorted(containers or [])
    value_count, byte_count = min(value_count, _MAX_COUNT), min(byte_count, _MAX_COUNT)
    details: dict[str, object] = {"purpose": DATA_ACT_PURPOSE, "containers": names,
                                  "vehicles": [vin], "party": party, "read": action}
    with database.session() as session:
        row = DataActAccessRow(tenant_id=principal.tenant, vin=vin, client_id="", party="",
                               grant_id=None, action="", containers="", value_count=0,
                               byte_count=0, at=now, outcome="refused" if error else "allowed",
                               error=None)
        session.add(row)
        session.flush()  # its access id
        place(session, row, {  # in the vehicle's region store
            "client_id": principal.client_id, "party": party,
            "grant_id": access.grant_ids[-1] if access and access.grant_ids else None,
            "action": action, "containers": " ".join(names), "value_count": value_count,
            "byte_count": byte_count, "error": type(error).__name__[:64] if error else None})
        if error is not None:
            record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                         action="privacy.read.refused", target=f"data-act:{vin}",
                         request_id=request_id, now=now, vehicle=audit_vehicle(session, vin),
                         details={**details, "error": type(error).__name__,
                                  "detail": str(error)})
            return
        record_audit(session, tenant=principal.tenant, actor=principal.client_id,
                     action="privacy.read", target=f"data-act:{vin}", request_id=request_id,
                     now=now, vehicle=audit_vehicle(session, vin), details={**details, "allowed": sorted(access.categories)
                                       if access else [], "values": value_count})
        if party == "third_party":
            _meter(session, principal.tenant, principal.client_id, now, value_count, byte_count,
                   requests=1 if new_request else 0)


def _meter(session: Session, tenant: str, recipient: str, now: datetime, values: int,
           byte_count: int, *, requests: int) -> None:
    month = now.strftime("%Y-%m")
    # One UPDATE adds atomically; only the month's first read inserts.
    changed = session.execute(
        update(DataActMeterRow)
        .where(DataActMeterRow.tenant_id == tenant, DataActMeterRow.recipient == recipient,
               DataActMeterRow.month == month)
        .values(requests=DataActMeterRow.requests + requests,
                value_count=DataActMeterRow.value_count + values,
                byte_count=DataActMeterRow.byte_count + byte_count))
    if getattr(changed, "rowcount", 0) == 0:
        session.add(DataActMeterRow(tenant_id=tenant, recipient=recipient, month=month,
                                    requests=requests, value_count=values,
                                    byte_count=byte_count))


def access_log(session: Session, tenant: str, vin: str, limit: int = MAX_LOG_ENTRIES
               ) -> list[dict[str, object]]:
    """The vehicle's Data Act access log, newest first."""
    rows = list(session.scalars(
        select(DataActAccessRow)
        .where(DataActAccessRow.tenant_id == tenant, DataActAccessRow.vin == vin)
        .order_by(DataActAccessRow.access_id.desc()).limit(min(limit, MAX_LOG_ENTRIES))))
    found = contents(session, rows)
    return [{"access_id": r.access_id, "at": r.at.isoformat(), "client_id": c["client_id"],
             "party": c["party"], "grant_id": c["grant_id"], "action": c["action"],
             "containers": c["containers"].split(), "values": c["value_count"],
             "bytes": c["byte_count"], "outcome": r.outcome, "error": c["error"]}
            for r in rows if (c := found.get(r.access_id)) is not None]


def set_sme(session: Session, *, tenant: str, client_id: str, sme: bool, actor: str,
            request_id: str | None = None) -> None:
    """Mark recipient ``client_id`` a small or medium enterprise (or not); records
    ``privacy.data_act.recipient``.

    Raises:
        NotFoundError: no such client in ``tenant``.
        BadInputError: the client is not a third-party app.
    """
    client = get_client(session, tenant, client_id)
    if client.role is not Role.THIRD_PARTY_APP:
        raise BadInputError(f"client {client_id!r} has role {client.role.value!r}; recipients "
                            "are clients of role 'third_party_app'")
    now = datetime.now(UTC)
    row = session.get(DataActRecipientRow, (tenant, client_id))
    if row is None:
        session.add(DataActRecipientRow(tenant_id=tenant, client_id=client_id, sme=sme,
                                        updated_at=now))
    else:
        row.sme, row.updated_at = sme, now
    session.flush()
    record_audit(session, tenant=tenant, actor=actor, action="privacy.data_act.recipient",
                 target=f"client:{client_id}", request_id=request_id, now=now,
                 details={"sme": sme})


def metering(session: Session, tenant: str, tariff: Tariff, *, month: str | None = None,
             recipient: str | None = None) -> list[dict[str, object]]:
    """Per recipient and month (newest first): requests, values, bytes, SME, charge."""
    query = select(DataActMeterRow).where(DataActMeterRow.tenant_id == tenant)
    if month is not None:
        query = query.where(DataActMeterRow.month == month)
    if recipient is not None:
        query = query.where(DataActMeterRow.recipient == recipient)
    smes = {r.client_id: r.sme for r in session.scalars(
        select(DataActRecipientRow).where(DataActRecipientRow.tenant_id == tenant))}
    out = []
    for row in session.scalars(query.order_by(DataActMeterRow.month.desc(),
                                              DataActMeterRow.recipient)):
        sme = smes.get(row.recipient, False)
        out.append({"recipient": row.recipient, "month": row.month, "requests": row.requests,
                    "values": row.value_count, "bytes": row.byte_count, "sme": sme,
                    "charge_eur": tariff.charge(row.requests, row.byte_count, sme=sme)})
    return out


def parse_month(text: str | None) -> str | None:
    """``YYYY-MM`` or None.

    Raises:
        BadInputError: anything else.
    """
    if text is None:
        return None
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise BadInputError(f"month {text!r} is malformed; expected YYYY-MM") from None
    if len(text) != 7:
        raise BadInputError(f"month {text!r} is malformed; expected YYYY-MM")
    return text
