"""Which state tables hold a tenant's data, and how their rows become JSON and come back.

Portability works on the state schema as a whole, the way migrations do: a tenant moving to
another installation takes every row that is its own. The rules, decided here once:

- a table with a ``tenant_id`` column holds tenant data — except the audit log (the
  installation's own record, whose hash chain cannot move), client credentials (secrets are
  never exported; the target issues its own) and installation state without a tenant
  (workers, dispatch cursors, the batch-id memory of ingestion);
- a table without a tenant column follows its parent row (:data:`CHILDREN`): a twin's
  reported and desired values and ECUs, an invoice's lines;
- a *subject* export (one vehicle, or every vehicle of one owner) keeps only rows that name
  one of its VINs; it never carries the tenant's pseudonym key.

Rows are JSON objects keyed by column name: timestamps as ISO 8601 UTC text, dates as ISO 8601
dates, binary columns
as base64 text, everything else as JSON scalars. :func:`json_schema` describes each table as
a JSON Schema (draft 2020-12) that the rows validate against.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

# Importing the models registers every domain's tables on the shared metadata.
import drivetrain.cloud.campaigns.models
import drivetrain.cloud.commands.models
import drivetrain.cloud.commerce.models
import drivetrain.cloud.fleet.models
import drivetrain.cloud.ingest.models
import drivetrain.cloud.insights.models
import drivetrain.cloud.privacy.models
import drivetrain.cloud.security.models
import drivetrain.cloud.twins.models  # noqa: F401
from drivetrain.cloud.infra.models import Base
from drivetrain.cloud.infra.region_rows import erase_everywhere, rows_of
from drivetrain.cloud.twins.personal import erase_personal, personal_rows_of
from drivetrain.core.errors import BadInputError

#: Tables never exported, with why (also printed in docs/portability.md).
EXCLUDED: Final[Mapping[str, str]] = {
    "audit_log": "the installation's hash-chained record; it cannot move without breaking",
    "audit_chains": "the head of the audit chain",
    "audit_personal": "the personal part of audit entries, kept with the chain that points "
                      "to it (erased with the vehicle)",
    "clients": "credentials; the target installation issues its own",
    "ingest_seen_batches": "ingestion's short-lived memory of batch ids",
    "ingest_workers": "ingest worker heartbeats of this installation",
    "dispatch_cursors": "this installation's dispatcher position",
}
#: Only in a whole-tenant export: the secret that links VINs to lake pseudonyms (kept so the
#: telemetry stays linked to its vehicles in the target installation).
TENANT_ONLY: Final = frozenset({"privacy_pseudonym_keys", "tenants"})
#: Not exported, but an erasure still deletes their rows naming the vehicle (a VIN is unique
#: across tenants, so the VIN alone selects them).
ERASED_BY_VIN: Final = ("ingest_seen_batches",)
#: Not exported, kept in the region stores; an erasure deletes their rows naming the vehicle
#: in every store (the audit entries' pointers stay, their digests then link to nothing).
ERASED_IN_STORES: Final = ("audit_personal",)
#: Tables without a tenant column of their own: (their column, the parent table and column).
CHILDREN: Final[Mapping[str, tuple[str, str, str]]] = {
    "twin_reported": ("vin", "twins", "vin"),
    "twin_reported_personal": ("vin", "twins", "vin"),
    "ingest_dead_letter_contents": ("vin", "twins", "vin"),
    "ingest_vehicle_event_data": ("vin", "twins", "vin"),
    "twin_desired": ("vin", "twins", "vin"),
    "twin_desired_personal": ("vin", "twins", "vin"),
    "twin_desired_reasons": ("vin", "twins", "vin"),
    "twin_ecus": ("vin", "twins", "vin"),
    "privacy_consent_contents": ("vin", "fleet_vehicles", "vin"),
    "privacy_purpose_grant_contents": ("vin", "fleet_vehicles", "vin"),
    "privacy_data_act_grant_contents": ("vin", "fleet_vehicles", "vin"),
    "privacy_data_act_access_contents": ("vin", "fleet_vehicles", "vin"),
    "commerce_invoice_lines": ("invoice_id", "commerce_invoices", "invoice_id"),
}
#: Kept in each vehicle's region store (``drivetrain.cloud.infra.region_stores``), not in the
#: state database: exported, imported and erased there (a twin's personal values through
#: ``drivetrain.cloud.twins.personal``, the others through ``region_rows``).
REGIONAL: Final = frozenset({
    "twin_reported_personal", "twin_desired_personal", "ingest_dead_letter_contents",
    "ingest_vehicle_event_data", "privacy_consent_contents", "privacy_purpose_grant_contents",
    "privacy_data_act_grant_contents", "privacy_data_act_access_contents",
    "twin_desired_reasons", "privacy_vehicle_owners",
})
#: Kept by an erasure, with why: records a law requires to be kept (GDPR Art. 17(3)(b)).
RETAINED_ON_ERASURE: Final[Mapping[str, str]] = {
    "commerce_invoices": "invoices: tax and commercial law require them to be kept",
    "commerce_invoice_lines": "invoice lines: part of the invoices kept by law",
    "commerce_ledger": "the billing ledger: bookkeeping law requires it to be kept",
    "commerce_payment_events": "payment records: kept with the invoices they settle",
}


@dataclass(frozen=True, slots=True)
class Subject:
    """Whose data: a whole tenant (``vins`` None), or only rows naming these VINs."""

    tenant: str
    vins: frozenset[str] | None = None

    @property
    def whole_tenant(self) -> bool:
        """True for a whole-tenant export."""
        return self.vins is None


def portable_tables() -> list[sa.Table]:
    """The tenant-data tables, parents before children (the order to insert them in)."""
    tables = []
    for table in Base.metadata.sorted_tables:
        if table.name in EXCLUDED:
            continue
        if "tenant_id" in table.c or table.name in CHILDREN:
            tables.append(table)
    # Regional rows go last: their store is found through the vehicle's twin.
    return sorted(tables, key=lambda t: t.name in REGIONAL)


def tables_for(subject: Subject) -> list[sa.Table]:
    """The tables ``subject``'s export holds (a subject export: those naming a VIN)."""
    if subject.whole_tenant:
        return portable_tables()
    return [t for t in portable_tables()
            if t.name not in TENANT_ONLY and ("vin" in t.c or _parent_has_vin(t))]


def _parent_has_vin(table: sa.Table) -> bool:
    link = CHILDREN.get(table.name)
    return link is not None and "vin" in Base.metadata.tables[link[1]].c


def subject_condition(table: sa.Table, subject: Subject) -> sa.ColumnElement[bool]:
    """The condition that selects ``subject``'s rows of ``table``."""
    link = CHILDREN.get(table.name)
    if link is not None:
        column, parent_name, key = link
        parent = Base.metadata.tables[parent_name]
        owned = sa.select(parent.c[key]).where(subject_condition(parent, subject))
        return table.c[column].in_(owned)
    condition: sa.ColumnElement[bool] = table.c.tenant_id == subject.tenant
    if subject.vins is not None:
        condition = sa.and_(condition, table.c.vin.in_(sorted(subject.vins)))
    return condition


def select_rows(table: sa.Table, subject: Subject) -> sa.Select[Any]:
    """The query for ``subject``'s rows of ``table``, ordered by primary key."""
    return sa.select(table).where(subject_condition(table, subject)).order_by(
        *table.primary_key.columns)


def subject_vins(session: Session, subject: Subject) -> list[str]:
    """The VINs of ``subject``'s twins (whose personal state the region stores hold)."""
    twins = Base.metadata.tables["twins"]
    return list(session.scalars(
        sa.select(twins.c.vin).where(subject_condition(twins, subject)).order_by(twins.c.vin)))


def registered_regions(session: Session, subject: Subject) -> dict[str, str]:
    """VIN → region of ``subject``'s registered vehicles (a vehicle need not have a twin to
    have dead letters or events in its region store)."""
    vehicles = Base.metadata.tables["fleet_vehicles"]
    query = sa.select(vehicles.c.vin, vehicles.c.region).where(
        subject_condition(vehicles, subject))
    return {vin: region for vin, region in session.execute(query)}


def subject_rows(session: Session, table: sa.Table, subject: Subject) -> list[Any]:
    """``subject``'s rows of ``table`` (as mappings), from the region stores for a
    :data:`REGIONAL` table."""
    if table.name == "twin_reported_personal":
        return personal_rows_of(session, subject_vins(session, subject))
    if table.name in REGIONAL:
        return rows_of(session, table, registered_regions(session, subject))
    return [r._mapping for r in session.execute(select_rows(table, subject))]


def delete_rows(session: Session, subject: Subject) -> dict[str, int]:
    """Delete every row naming one of ``subject``'s VINs (children before parents); returns
    rows deleted per table.

    Raises:
        ValueError: a whole-tenant subject (tenants are not erased this way).
    """
    if subject.whole_tenant:
        raise ValueError("delete_rows erases the rows of named VINs, not a whole tenant")
    deleted: dict[str, int] = {}
    # First the region stores: which store holds a vehicle is read from its twin.
    vins = subject_vins(session, subject)
    deleted["twin_reported_personal"] = erase_personal(session, vins)
    for name in sorted((REGIONAL | set(ERASED_IN_STORES)) - {"twin_reported_personal"}):
        deleted[name] = erase_everywhere(session, Base.metadata.tables[name], subject.vins or ())
    for table in reversed(tables_for(subject)):
        if table.name in RETAINED_ON_ERASURE or table.name in REGIONAL:
            continue
        result = session.execute(sa.delete(table).where(subject_condition(table, subject)))
        deleted[table.name] = int(getattr(result, "rowcount", 0) or 0)
    for name in ERASED_BY_VIN:  # installation state that still names the vehicle
        table = Base.metadata.tables[name]
        result = session.execute(sa.delete(table).where(
            table.c.vin.in_(sorted(subject.vins or ()))))
        deleted[name] = int(getattr(result, "rowcount", 0) or 0)
    session.flush()
    return deleted


def _kind(column: sa.Column[Any]) -> str:
    type_ = column.type
    if isinstance(type_, sa.LargeBinary):
        return "binary"
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.Integer):  # BigInteger too
        return "integer"
    if isinstance(type_, sa.Float):
        return "number"
    if isinstance(type_, sa.String):  # Text too
        return "string"
    if getattr(type_, "python_type", None) is datetime or "DateTime" in type(type_).__name__:
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    raise TypeError(f"column {column.table.name}.{column.name} has type {type_!r}, which "
                    "the portable format does not know")  # a new type needs a rule here


def to_json_row(table: sa.Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    """One database row as a JSON object (see the module docstring)."""
    out: dict[str, Any] = {}
    for column in table.columns:
        value = row[column.name]
        if value is not None:
            kind = _kind(column)
            if kind == "binary":
                value = base64.b64encode(bytes(value)).decode("ascii")
            elif kind == "datetime":
                value = value.astimezone(UTC).isoformat()
            elif kind == "date":
                value = value.isoformat()
        out[column.name] = value
    return out


def from_json_row(table: sa.Table, data: object, where: str) -> dict[str, Any]:
    """A JSON object back as a database row.

    Raises:
        BadInputError: not an object, a missing or unknown column, or a value of the wrong
            type (``where`` names the file and row).
    """
    if not isinstance(data, dict):
        raise BadInputError(f"{where}: expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(table.c.keys()))
    if unknown:
        raise BadInputError(f"{where}: unknown column(s) {', '.join(unknown)} for table "
                            f"{table.name}")
    row: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in data:
            raise BadInputError(f"{where}: column {column.name!r} is missing")
        row[column.name] = _decode(column, data[column.name], f"{where}.{column.name}")
    return row


_PYTHON_TYPES: Final[Mapping[str, type | tuple[type, ...]]] = {
    "binary": str, "datetime": str, "date": str, "string": str, "boolean": bool, "integer": int,
    "number": (int, float),
}


def _decode(column: sa.Column[Any], value: object, where: str) -> object:
    if value is None:
        if not column.nullable:
            raise BadInputError(f"{where}: null in a column that is not nullable")
        return None
    kind = _kind(column)
    expected = _PYTHON_TYPES[kind]
    if not isinstance(value, expected) or (kind in ("integer", "number")
                                           and isinstance(value, bool)):
        raise BadInputError(f"{where}: {value!r:.60} is not a {kind}")
    if kind == "integer" and not -(2**63) <= value < 2**63:  # type: ignore[operator]
        raise BadInputError(f"{where}: {value} is outside the 64-bit range")
    if kind == "binary":
        try:
            return base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadInputError(f"{where}: not base64: {e}") from e
    if kind == "datetime":
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError as e:
            raise BadInputError(f"{where}: {value!r:.60} is not an ISO 8601 time") from e
        if parsed.tzinfo is None:
            raise BadInputError(f"{where}: {value!r:.60} has no timezone")
        return parsed.astimezone(UTC)
    if kind == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError as e:
            raise BadInputError(f"{where}: {value!r:.60} is not an ISO 8601 date") from e
    if kind == "string":
        length = getattr(column.type, "length", None)
        if length is not None and len(str(value)) > length:
            raise BadInputError(f"{where}: longer than {length} characters")
    return value


def json_schema(table: sa.Table) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of ``table``'s rows in the portable format."""
    properties: dict[str, Any] = {}
    for column in table.columns:
        kind = _kind(column)
        prop: dict[str, Any] = {
            "binary": {"type": "string", "contentEncoding": "base64"},
            "datetime": {"type": "string", "format": "date-time"},
            "date": {"type": "string", "format": "date"},
            "string": {"type": "string"},
            "boolean": {"type": "boolean"},
            "integer": {"type": "integer"},
            "number": {"type": "number"},
        }[kind]
        length = getattr(column.type, "length", None)
        if kind == "string" and length is not None:
            prop["maxLength"] = length
        if column.nullable:
            prop = {"anyOf": [prop, {"type": "null"}]}
        if column.comment:
            prop["description"] = column.comment
        properties[column.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"drivetrain:portable:{table.name}",
        "title": table.name,
        "type": "array",
        "items": {
            "type": "object",
            "properties": properties,
            "required": [c.name for c in table.columns],
            "additionalProperties": False,
        },
    }


def primary_key(table: sa.Table, row: Mapping[Any, Any]) -> tuple[Any, ...]:
    """The primary-key values of ``row``."""
    return tuple(row[c.name] for c in table.primary_key.columns)


def table_named(name: str, allowed: Sequence[sa.Table]) -> sa.Table:
    """The table ``name`` among ``allowed``.

    Raises:
        BadInputError: not a portable table.
    """
    for table in allowed:
        if table.name == name:
            return table
    raise BadInputError(f"table {name!r} is not part of the portable format; expected one of "
                        f"{', '.join(t.name for t in allowed)}")
